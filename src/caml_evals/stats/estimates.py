"""Means with clustered SEs and cluster-bootstrap CIs (`summarize`).

The cluster is the question: its epochs and variable expansions are not independent draws, so
treating them as such understates uncertainty. Both the SE and the bootstrap act on whole
questions; the mean itself weights every observation once (the number Inspect reports), or
every question once with `cluster_weight="equal"`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .models import Summary
from .resampling import (
    CIMethod,
    ClusterWeight,
    _rng,
    bootstrap_interval,
    cluster_sums,
    clustered_se,
    encode_clusters,
    mask_groups,
    ratio,
    weighted,
)

STREAM_SUMMARY = 0


def as_values(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Float array with None -> NaN (missing); numpy already maps None to NaN for float."""
    return np.asarray(values, dtype=float)


def summarize_matrix(
    values: np.ndarray,
    clusters: Sequence | np.ndarray | None = None,
    *,
    ci: float = 0.95,
    n_resamples: int = 10_000,
    method: CIMethod = "percentile",
    seed: int | None = 0,
    cluster_weight: ClusterWeight = "size",
) -> list[Summary]:
    """`summarize` for every column of an (observations x keys) matrix at once.

    Each key's result depends only on its own column and the seed, so it equals
    `summarize(column, ...)`.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    _check(ci, n_resamples)
    codes = encode_clusters(clusters, values.shape[0])
    sums, counts = weighted(
        *cluster_sums(values, codes, int(codes.max(initial=-1)) + 1), cluster_weight
    )
    n_missing = np.isnan(values).sum(axis=0)
    n_present = (~np.isnan(values)).sum(axis=0)
    results: list[Summary | None] = [None] * values.shape[1]
    for keys, rows in mask_groups(counts) if sums.shape[0] else []:
        s, c = sums[rows][:, keys], counts[rows][:, keys]
        mean = ratio(s, c)
        se = clustered_se(s, c)
        low, high = bootstrap_interval(
            s, c, ci=ci, n_resamples=n_resamples, method=method, rng=_rng(seed, STREAM_SUMMARY)
        )
        for j, k in enumerate(keys):
            results[k] = Summary(
                mean=float(mean[j]),
                se=float(se[j]),
                ci_low=float(low[j]),
                ci_high=float(high[j]),
                n=int(n_present[k]),
                n_clusters=int(rows.sum()),
                n_missing=int(n_missing[k]),
                ci=ci,
                method=method,
            )
    empty = {
        "mean": np.nan,
        "se": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "n": 0,
        "n_clusters": 0,
        "ci": ci,
        "method": method,
    }
    return [
        r if r is not None else Summary(**empty, n_missing=int(n_missing[k]))
        for k, r in enumerate(results)
    ]


def summarize(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence | np.ndarray | None = None,
    *,
    ci: float = 0.95,
    n_resamples: int = 10_000,
    method: CIMethod = "percentile",
    seed: int | None = 0,
    cluster_weight: ClusterWeight = "size",
) -> Summary:
    """Mean, clustered SE and bootstrap CI of a 1-D array of scores (NaN/None = missing).

    `clusters` gives each value's question id (None: every value its own cluster). Missing
    values are excluded and counted in `n_missing`. `method` is "percentile" or "bca".
    `seed=0` (default) gives the same numbers every run; `seed=None` draws fresh entropy.
    """
    arr = as_values(values)
    if arr.ndim != 1:
        raise ValueError(f"summarize takes a 1-D array, got shape {arr.shape}")
    return summarize_matrix(
        arr,
        clusters,
        ci=ci,
        n_resamples=n_resamples,
        method=method,
        seed=seed,
        cluster_weight=cluster_weight,
    )[0]


def _check(ci: float, n_resamples: int) -> None:
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
