"""Two-arm comparisons on score arrays (`compare`): paired or unpaired, clustered by question.

Paired (same questions answered by both): the difference B - A per pair, a bootstrap CI that
resamples questions, and a sign-flip test that flips every question's differences together.
Unpaired (different question sets): independent cluster bootstraps of each arm and a
permutation test that relabels whole questions between arms.

A pair with either side missing is dropped from the paired comparison (and counted), so
`mean_a` and `mean_b` there are over complete pairs and `diff = mean_b - mean_a` holds exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .estimates import _check, as_values
from .models import Comparison
from .resampling import (
    Alternative,
    CIMethod,
    ClusterWeight,
    _rng,
    bca_interval,
    bootstrap_interval,
    bootstrap_ratio,
    cluster_sums,
    clustered_se,
    encode_clusters,
    jackknife_ratio,
    mask_groups,
    percentile_interval,
    permutation_null,
    pvalues,
    ratio,
    signflip_null,
    weighted,
)

STREAM_PAIRED_BOOT, STREAM_SIGNFLIP = 1, 2
STREAM_BOOT_A, STREAM_BOOT_B, STREAM_PERMUTATION = 3, 4, 5


def _nanvar(x: np.ndarray) -> np.ndarray:
    n = (~np.isnan(x)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(x, axis=0) / n
        return np.where(n > 1, np.nansum((x - mean) ** 2, axis=0) / (n - 1), np.nan)


def effect_size(a: np.ndarray, b: np.ndarray, diff: np.ndarray) -> np.ndarray:
    """Cohen's d_av: the difference in units of the average within-arm SD (Cumming 2012).

    WHY d_av and not d_z: d_z divides by the SD of the differences, so it grows with the
    correlation between arms and cannot be compared with an unpaired d; d_av can.
    """
    sd = np.sqrt((_nanvar(a) + _nanvar(b)) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, diff / sd, np.where(diff == 0, 0.0, np.nan))


def compare_paired_matrix(
    a: np.ndarray,
    b: np.ndarray,
    clusters: Sequence | np.ndarray | None = None,
    *,
    ci: float = 0.95,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    alternative: Alternative = "two-sided",
    method: CIMethod = "percentile",
    cluster_weight: ClusterWeight = "size",
    exact: bool | None = None,
) -> list[Comparison]:
    """`compare(paired=True)` for every column of two aligned (pairs x keys) matrices."""
    a, b = _as_matrix(a), _as_matrix(b)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs aligned arrays, got {a.shape} and {b.shape}")
    _check(ci, n_resamples)
    valid = ~np.isnan(a) & ~np.isnan(b)
    a_used, b_used = np.where(valid, a, np.nan), np.where(valid, b, np.nan)
    codes = encode_clusters(clusters, a.shape[0])
    n_clusters = int(codes.max(initial=-1)) + 1
    sums_d, counts = cluster_sums(b_used - a_used, codes, n_clusters)
    sums_a, _ = cluster_sums(a_used, codes, n_clusters)
    sums_b, _ = cluster_sums(b_used, codes, n_clusters)
    sums_a, _ = weighted(sums_a, counts, cluster_weight)
    sums_b, _ = weighted(sums_b, counts, cluster_weight)
    sums_d, counts = weighted(sums_d, counts, cluster_weight)
    common = {
        "n_missing_a": np.isnan(a).sum(axis=0),
        "n_missing_b": np.isnan(b).sum(axis=0),
        "n": valid.sum(axis=0),
    }
    results: list[Comparison | None] = [None] * a.shape[1]
    for keys, rows in mask_groups(counts) if n_clusters else []:
        s_d, c = sums_d[rows][:, keys], counts[rows][:, keys]
        diff = ratio(s_d, c)
        low, high = bootstrap_interval(
            s_d,
            c,
            ci=ci,
            n_resamples=n_resamples,
            method=method,
            rng=_rng(seed, STREAM_PAIRED_BOOT),
        )
        null, is_exact = signflip_null(
            s_d, c, n_resamples=n_resamples, rng=_rng(seed, STREAM_SIGNFLIP), exact=exact
        )
        scale = np.abs(s_d).sum(axis=0) / c.sum(axis=0)
        p = pvalues(null, diff, alternative, exact=is_exact, scale=scale)
        mean_a, mean_b = ratio(sums_a[rows][:, keys], c), ratio(sums_b[rows][:, keys], c)
        se = clustered_se(s_d, c)
        d_size = effect_size(a_used[:, keys], b_used[:, keys], diff)
        for j, k in enumerate(keys):
            n = int(common["n"][k])
            results[k] = Comparison(
                mean_a=float(mean_a[j]),
                mean_b=float(mean_b[j]),
                diff=float(diff[j]),
                se=float(se[j]),
                ci_low=float(low[j]),
                ci_high=float(high[j]),
                p_value=float(p[j]),
                test="sign-flip exact" if is_exact else "sign-flip monte-carlo",
                exact=is_exact,
                effect_size=float(d_size[j]),
                n=n,
                n_a=n,
                n_b=n,
                n_clusters=int(rows.sum()),
                n_missing_a=int(common["n_missing_a"][k]),
                n_missing_b=int(common["n_missing_b"][k]),
                paired=True,
                ci=ci,
                method=method,
                alternative=alternative,
            )
    return [
        r
        if r is not None
        else _empty(
            True,
            ci,
            method,
            alternative,
            n_missing_a=int(common["n_missing_a"][k]),
            n_missing_b=int(common["n_missing_b"][k]),
        )
        for k, r in enumerate(results)
    ]


def compare_unpaired_matrix(
    a: np.ndarray,
    b: np.ndarray,
    clusters_a: Sequence | np.ndarray | None = None,
    clusters_b: Sequence | np.ndarray | None = None,
    *,
    ci: float = 0.95,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    alternative: Alternative = "two-sided",
    method: CIMethod = "percentile",
    cluster_weight: ClusterWeight = "size",
    exact: bool | None = None,
) -> list[Comparison]:
    """`compare(paired=False)` for every column of an (A obs x keys) and a (B obs x keys) matrix."""
    a, b = _as_matrix(a), _as_matrix(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"A has {a.shape[1]} keys, B has {b.shape[1]}")
    _check(ci, n_resamples)
    codes_a, codes_b = (
        encode_clusters(clusters_a, a.shape[0]),
        encode_clusters(clusters_b, b.shape[0]),
    )
    ca, cb = int(codes_a.max(initial=-1)) + 1, int(codes_b.max(initial=-1)) + 1
    sums_a, counts_a = weighted(*cluster_sums(a, codes_a, ca), cluster_weight)
    sums_b, counts_b = weighted(*cluster_sums(b, codes_b, cb), cluster_weight)
    _sums, counts = np.vstack([sums_a, sums_b]), np.vstack([counts_a, counts_b])
    n_a, n_b = (~np.isnan(a)).sum(axis=0), (~np.isnan(b)).sum(axis=0)
    miss_a, miss_b = np.isnan(a).sum(axis=0), np.isnan(b).sum(axis=0)
    means_a, means_b = ratio(sums_a, counts_a), ratio(sums_b, counts_b)
    results: list[Comparison | None] = [None] * a.shape[1]
    for keys, rows in mask_groups(counts) if ca + cb else []:
        rows_a, rows_b = rows[:ca], rows[ca:]
        ka, kb = int(rows_a.sum()), int(rows_b.sum())
        if ka == 0 or kb == 0:
            continue
        s_a, c_a = sums_a[rows_a][:, keys], counts_a[rows_a][:, keys]
        s_b, c_b = sums_b[rows_b][:, keys], counts_b[rows_b][:, keys]
        mean_a, mean_b = ratio(s_a, c_a), ratio(s_b, c_b)
        diff = mean_b - mean_a
        se = np.sqrt(clustered_se(s_a, c_a) ** 2 + clustered_se(s_b, c_b) ** 2)
        if ka >= 2 and kb >= 2:
            dist = bootstrap_ratio(
                s_b, c_b, n_resamples, _rng(seed, STREAM_BOOT_B)
            ) - bootstrap_ratio(s_a, c_a, n_resamples, _rng(seed, STREAM_BOOT_A))
            if method == "percentile":
                low, high = percentile_interval(dist, ci)
            else:
                jacks = [mean_b - jackknife_ratio(s_a, c_a), jackknife_ratio(s_b, c_b) - mean_a]
                low, high = bca_interval(dist, diff, jacks, ci)
        else:
            low = high = np.full(len(keys), np.nan)
        null, is_exact = permutation_null(
            np.vstack([s_a, s_b]),
            np.vstack([c_a, c_b]),
            kb,
            n_resamples=n_resamples,
            rng=_rng(seed, STREAM_PERMUTATION),
            exact=exact,
        )
        scale = (np.abs(s_a).sum(axis=0) + np.abs(s_b).sum(axis=0)) / (
            c_a.sum(axis=0) + c_b.sum(axis=0)
        )
        p = pvalues(null, diff, alternative, exact=is_exact, scale=scale)
        d_size = effect_size(a[:, keys], b[:, keys], diff)
        for j, k in enumerate(keys):
            results[k] = Comparison(
                mean_a=float(mean_a[j]),
                mean_b=float(mean_b[j]),
                diff=float(diff[j]),
                se=float(se[j]),
                ci_low=float(low[j]),
                ci_high=float(high[j]),
                p_value=float(p[j]),
                test="permutation",
                exact=is_exact,
                effect_size=float(d_size[j]),
                n=int(n_a[k] + n_b[k]),
                n_a=int(n_a[k]),
                n_b=int(n_b[k]),
                n_clusters=ka + kb,
                n_missing_a=int(miss_a[k]),
                n_missing_b=int(miss_b[k]),
                paired=False,
                ci=ci,
                method=method,
                alternative=alternative,
            )
    return [
        r
        if r is not None
        else _empty(
            False,
            ci,
            method,
            alternative,
            n_a=int(n_a[k]),
            n_b=int(n_b[k]),
            mean_a=float(means_a[k]),
            mean_b=float(means_b[k]),
            n_missing_a=int(miss_a[k]),
            n_missing_b=int(miss_b[k]),
        )
        for k, r in enumerate(results)
    ]


def compare(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    paired: bool = True,
    clusters: Any = None,
    ci: float = 0.95,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    alternative: Alternative = "two-sided",
    method: CIMethod = "percentile",
    cluster_weight: ClusterWeight = "size",
    exact: bool | None = None,
) -> Comparison:
    """Compare scores of B with A: `diff = mean_b - mean_a`, a bootstrap CI, a p-value.

    a, b: 1-D arrays, NaN/None = missing. Paired: aligned by position (same question, variant
    and epoch), `clusters` one array of question ids (aggregated to question level, then
    tested there: bootstrap over questions and a sign-flip test, exact when 2^questions <=
    n_resamples and questions <= 24). Unpaired: `clusters` is `(clusters_a, clusters_b)` (or
    one array used for both when the arrays have equal length); permutation test relabelling
    whole questions. `alternative="greater"` tests B > A. `exact` forces (True) or forbids
    (False) enumeration. `seed=0` (default) gives the same numbers every run; `seed=None`
    draws fresh entropy (numpy's convention).
    """
    arr_a, arr_b = as_values(a), as_values(b)
    if arr_a.ndim != 1 or arr_b.ndim != 1:
        raise ValueError("compare takes 1-D arrays; use compare_paired_matrix for several keys")
    options = {
        "ci": ci,
        "n_resamples": n_resamples,
        "seed": seed,
        "alternative": alternative,
        "method": method,
        "cluster_weight": cluster_weight,
        "exact": exact,
    }
    if paired:
        if arr_a.shape != arr_b.shape:
            raise ValueError(
                f"paired comparison needs equal lengths (got {arr_a.size} and {arr_b.size}); "
                "pass paired=False for different samples"
            )
        return compare_paired_matrix(arr_a, arr_b, clusters, **options)[0]
    if clusters is None:
        clusters_a = clusters_b = None
    elif isinstance(clusters, tuple | list) and len(clusters) == 2 and not np.isscalar(clusters[0]):
        clusters_a, clusters_b = clusters
    elif arr_a.size == arr_b.size and len(clusters) == arr_a.size:
        clusters_a = clusters_b = clusters
    else:
        raise ValueError("unpaired compare: pass clusters=(clusters_a, clusters_b)")
    return compare_unpaired_matrix(arr_a, arr_b, clusters_a, clusters_b, **options)[0]


def _as_matrix(x: Any) -> np.ndarray:
    arr = as_values(x)
    return arr[:, None] if arr.ndim == 1 else arr


def _empty(paired: bool, ci: float, method: str, alternative: str, **counts: Any) -> Comparison:
    """Nothing to compare (no complete pair / an arm with no data): NaNs, counts kept."""
    fields: dict[str, Any] = {
        "mean_a": np.nan,
        "mean_b": np.nan,
        "diff": np.nan,
        "se": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p_value": np.nan,
        "test": "sign-flip exact" if paired else "permutation",
        "exact": False,
        "effect_size": np.nan,
        "n": 0,
        "n_a": 0,
        "n_b": 0,
        "n_clusters": 0,
        "n_missing_a": 0,
        "n_missing_b": 0,
        "paired": paired,
        "ci": ci,
        "method": method,
        "alternative": alternative,
    }
    fields.update(counts)
    if "n_a" in counts and "n_b" in counts:
        fields["n"] = counts["n_a"] + counts["n_b"]
    if np.isfinite(fields["mean_a"]) and np.isfinite(fields["mean_b"]):
        fields["diff"] = fields["mean_b"] - fields["mean_a"]
    return Comparison(**fields)
