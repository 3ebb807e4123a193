"""The vectorised engine: cluster sums, clustered SE, bootstrap, sign-flip and permutation nulls.

Every statistic here is a ratio of cluster sums, `sum_c w_c S_c / sum_c w_c n_c`, where cluster
`c` (a question: its epochs and variable expansions) has value sum `S_c` and count `n_c`, and
`w_c` is how often a resample draws it (bootstrap) or its sign (sign-flip). WHY: one weight
matrix times a (clusters x keys) matrix gives the statistic for all resamples and all keys at
once, so 10,000 resamples of 5,000 questions x 13 dimensions is a few matrix products, and
resampling whole clusters (never single epochs) is built in rather than bolted on.

Weight matrices are drawn in chunks of about `MAX_CELLS` cells to bound memory; the chunk size
depends only on the number of clusters, so the same seed gives the same numbers whatever the
number of keys.

All functions take clusters that are non-empty for every key (callers group keys by which
clusters they have, see `mask_groups`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
from scipy.special import ndtr, ndtri

Alternative = Literal["two-sided", "less", "greater"]
CIMethod = Literal["percentile", "bca"]
ClusterWeight = Literal["size", "equal"]

MAX_CELLS = 4_000_000  # resamples x clusters per chunk: ~32 MB of float64 weights
# Bootstrap weights are drawn in smaller chunks (2 MB of int64 draws) so counting and matrix
# products stay in the CPU cache: 2-3x faster on 1,000+ clusters. The int64 draws are the same
# stream whatever the chunk size; only the rounding of the matrix products (1e-16) differs.
BOOTSTRAP_CELLS = 262_144


DEFAULT_SEED = 0  # every public function defaults to it: same inputs, same numbers
MAX_EXACT_SIGNFLIP_CLUSTERS = 24  # 2^24 sign patterns x keys is the most we enumerate
MAX_EXACT_ARRANGEMENTS = 5_000_000  # C-choose-n_b relabellings we enumerate at most


def _rng(seed: int | None, stream: int) -> np.random.Generator:
    """Independent streams per purpose (bootstrap A, bootstrap B, permutation).

    An int seed (the default everywhere is `DEFAULT_SEED` = 0) makes them reproducible;
    `seed=None` means fresh OS entropy, numpy's convention, for a run that must not repeat
    another's random draws.
    """
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng([int(seed), stream])


def _chunks(n_resamples: int, n_clusters: int, cells: int | None = None) -> Iterator[int]:
    size = max(1, min(n_resamples, (cells or MAX_CELLS) // max(n_clusters, 1)))
    done = 0
    while done < n_resamples:
        step = min(size, n_resamples - done)
        yield step
        done += step


# ---------------------------------------------------------------- cluster sums


def encode_clusters(clusters: Sequence | np.ndarray | None, n: int) -> np.ndarray:
    """Integer codes 0..C-1 in order of first appearance; every row its own cluster if None."""
    if clusters is None:
        return np.arange(n)
    arr = np.asarray(clusters, dtype=object)
    if arr.shape != (n,):
        raise ValueError(f"clusters has shape {arr.shape}, values have {n} rows")
    _, first, inverse = np.unique(arr.astype(str), return_index=True, return_inverse=True)
    # Renumber by first appearance so codes (and hence resamples) follow the data order.
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.ravel()]


def cluster_sums(
    values: np.ndarray, codes: np.ndarray, n_clusters: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(sums, counts) per cluster and key of the non-missing values of `values` (N x K)."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    n_clusters = int(codes.max()) + 1 if n_clusters is None and codes.size else (n_clusters or 0)
    present = ~np.isnan(values)
    sums = np.zeros((n_clusters, values.shape[1]))
    counts = np.zeros((n_clusters, values.shape[1]))
    np.add.at(sums, codes, np.where(present, values, 0.0))
    np.add.at(counts, codes, present.astype(float))
    return sums, counts


def weighted(
    sums: np.ndarray, counts: np.ndarray, weight: ClusterWeight
) -> tuple[np.ndarray, np.ndarray]:
    """`size`: every observation counts once (the mean Inspect reports). `equal`: every
    question counts once, whatever its number of epochs/variants (cluster means)."""
    if weight == "size":
        return sums, counts
    if weight == "equal":
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.where(counts > 0, counts, 1), 0.0)
        return means, (counts > 0).astype(float)
    raise ValueError(f"cluster weight must be 'size' or 'equal', not {weight!r}")


def mask_groups(counts: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Keys that have exactly the same non-empty clusters, as (key indices, cluster mask).

    WHY: rubric dimensions are tagged per question, so each dimension lives on its own subset
    of questions; keys sharing a subset share one weight matrix. Keys with no data at all
    are left out (callers report them as empty).
    """
    present = counts > 0
    groups: dict[bytes, list[int]] = {}
    for k in range(present.shape[1]):
        if present[:, k].any():
            groups.setdefault(present[:, k].tobytes(), []).append(k)
    return [(np.array(keys), present[:, keys[0]]) for keys in groups.values()]


def ratio(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, sums.sum(axis=0) / np.where(total > 0, total, 1), np.nan)


def clustered_se(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cluster-robust SE of the ratio mean: the CR1 sandwich of an intercept-only OLS.

    Var = C/(C-1) * sum_c (S_c - n_c * mean)^2 / N^2; equals statsmodels
    `OLS(y, 1).fit(cov_type="cluster")` and, with one observation per cluster, s/sqrt(n).
    """
    n_clusters = sums.shape[0]
    total = counts.sum(axis=0)
    if n_clusters < 2:
        return np.full(sums.shape[1], np.nan)
    mean = ratio(sums, counts)
    resid = sums - counts * mean
    return np.sqrt(n_clusters / (n_clusters - 1) * (resid**2).sum(axis=0)) / total


# ---------------------------------------------------------------- bootstrap


def bootstrap_counts(
    n_clusters: int, n_resamples: int, rng: np.random.Generator, cells: int | None = None
) -> Iterator[np.ndarray]:
    """(step x C) int arrays, `n_resamples` rows in all: how often each of C clusters is drawn
    in each resample of whole clusters (with replacement). The one cluster bootstrap: ratio
    means use it below; statistics that are not ratios of cluster sums (the judge report's
    rank correlations) weight their items by these counts."""
    for step in _chunks(n_resamples, n_clusters, cells or BOOTSTRAP_CELLS):
        draws = rng.integers(0, n_clusters, size=(step, n_clusters), dtype=np.int64)
        draws += (np.arange(step) * n_clusters)[:, None]
        yield np.bincount(draws.ravel(), minlength=step * n_clusters).reshape(step, n_clusters)


def bootstrap_ratio(
    sums: np.ndarray, counts: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_resamples x K) ratio means over resamples of whole clusters (with replacement)."""
    n_clusters, n_keys = sums.shape
    out = np.empty((n_resamples, n_keys))
    both = np.hstack([sums, counts])  # one product for sums and counts
    row = 0
    for times in bootstrap_counts(n_clusters, n_resamples, rng):
        step = times.shape[0]
        product = times.astype(float) @ both
        with np.errstate(invalid="ignore", divide="ignore"):
            out[row : row + step] = product[:, :n_keys] / product[:, n_keys:]
        row += step
    return out


def jackknife_ratio(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(C x K) leave-one-cluster-out ratio means (for the BCa acceleration)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums.sum(axis=0) - sums) / (counts.sum(axis=0) - counts)


def percentile_interval(dist: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1 - ci) / 2
    low, high = np.quantile(dist, [alpha, 1 - alpha], axis=0)
    return low, high


def bca_interval(
    dist: np.ndarray, estimate: np.ndarray, jacks: Sequence[np.ndarray], ci: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected and accelerated interval (Efron & Tibshirani 14.3 and 15.4), computed as
    scipy.stats.bootstrap does, with the jackknife leaving out one cluster at a time.

    `jacks` holds one (clusters x K) jackknife array per independent sample (two for an
    unpaired difference), combined as scipy combines samples.
    """
    n_resamples = dist.shape[0]
    below = (dist < estimate).sum(axis=0) + (dist <= estimate).sum(axis=0)
    z0 = ndtri(below / (2 * n_resamples))
    num = np.zeros(dist.shape[1])
    den = np.zeros(dist.shape[1])
    for jack in jacks:
        n = jack.shape[0]
        u = (n - 1) * (jack.mean(axis=0) - jack)
        num += (u**3).sum(axis=0) / n**3
        den += (u**2).sum(axis=0) / n**2
    with np.errstate(invalid="ignore", divide="ignore"):
        accel = np.where(den > 0, num / (6 * den**1.5), 0.0)
    z_alpha = ndtri((1 - ci) / 2)
    lows, highs = [], []
    for k in range(dist.shape[1]):
        z, a = z0[k], accel[k]
        if not np.isfinite(z):  # estimate outside every resample: no bias correction possible
            lows.append(np.nan)
            highs.append(np.nan)
            continue
        p1 = ndtr(z + (z + z_alpha) / (1 - a * (z + z_alpha)))
        p2 = ndtr(z + (z - z_alpha) / (1 - a * (z - z_alpha)))
        low, high = np.quantile(dist[:, k], [p1, p2])
        lows.append(low)
        highs.append(high)
    return np.array(lows), np.array(highs)


def bootstrap_interval(
    sums: np.ndarray,
    counts: np.ndarray,
    *,
    ci: float,
    n_resamples: int,
    method: CIMethod,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """CI of the ratio mean by resampling clusters; NaN with fewer than two clusters."""
    n_keys = sums.shape[1]
    if sums.shape[0] < 2:
        return np.full(n_keys, np.nan), np.full(n_keys, np.nan)
    dist = bootstrap_ratio(sums, counts, n_resamples, rng)
    if method == "percentile":
        return percentile_interval(dist, ci)
    if method == "bca":
        return bca_interval(dist, ratio(sums, counts), [jackknife_ratio(sums, counts)], ci)
    raise ValueError(f"CI method must be 'percentile' or 'bca', not {method!r}")


# ---------------------------------------------------------------- permutation tests


def pvalues(
    null: np.ndarray,
    observed: np.ndarray,
    alternative: Alternative,
    *,
    exact: bool,
    scale: np.ndarray,
) -> np.ndarray:
    """P-values from a null distribution, with scipy.stats.permutation_test's conventions:
    Monte Carlo adds one to count and total (the observed arrangement), two-sided is twice the
    smaller tail. `scale` sets the tolerance for ties (null values equal to the observed one up
    to rounding, e.g. the identity arrangement)."""
    adjustment = 0 if exact else 1
    tol = 1e-9 * np.maximum(np.abs(observed), scale)
    total = null.shape[0] + adjustment
    less = ((null <= observed + tol).sum(axis=0) + adjustment) / total
    greater = ((null >= observed - tol).sum(axis=0) + adjustment) / total
    if alternative == "less":
        p = less
    elif alternative == "greater":
        p = greater
    elif alternative == "two-sided":
        p = 2 * np.minimum(less, greater)
    else:
        raise ValueError(f"alternative must be two-sided, less or greater, not {alternative!r}")
    return np.clip(p, 0.0, 1.0)


def _all_signs(n_clusters: int) -> np.ndarray:
    codes = np.arange(2**n_clusters)[:, None]
    bits = (codes >> np.arange(n_clusters)[None, :]) & 1
    return bits.astype(float) * 2 - 1


def signflip_null(
    diff_sums: np.ndarray,
    counts: np.ndarray,
    *,
    n_resamples: int,
    rng: np.random.Generator,
    exact: bool | None = None,
) -> tuple[np.ndarray, bool]:
    """Null distribution of the mean paired difference when each cluster's differences change
    sign together (exchangeable A/B labels within a question). `exact=None`: exact enumeration
    of all 2^C sign patterns when that is no more than `n_resamples` (scipy's rule) and C is at
    most `MAX_EXACT_SIGNFLIP_CLUSTERS`, else Monte Carlo. `exact=True` above the cap is an error."""
    n_clusters = diff_sums.shape[0]
    total = counts.sum(axis=0)
    if exact is None:  # the automatic rule never picks an enumeration it would refuse
        exact = n_clusters <= MAX_EXACT_SIGNFLIP_CLUSTERS and 2**n_clusters <= n_resamples
    if exact:
        if n_clusters > MAX_EXACT_SIGNFLIP_CLUSTERS:
            raise ValueError(
                f"exact sign-flip over {n_clusters} clusters is too large (at most "
                f"{MAX_EXACT_SIGNFLIP_CLUSTERS}); pass exact=None or False for Monte Carlo"
            )
        return (_all_signs(n_clusters) @ diff_sums) / total, True
    out = np.empty((n_resamples, diff_sums.shape[1]))
    row = 0
    n_bytes = (n_clusters + 7) // 8
    column_sums = diff_sums.sum(axis=0)
    block = max(1, BOOTSTRAP_CELLS // max(n_clusters, 1))
    for step in _chunks(n_resamples, n_clusters):
        # 8 random signs per random byte: an eighth of the draws of one integer per sign.
        # The draws keep MAX_CELLS chunks (uint8 draws are buffered per call, so the chunk size
        # is part of the stream); the signs are unpacked in cache-sized blocks of rows.
        packed = rng.integers(0, 256, size=(step, n_bytes), dtype=np.uint8)
        for start in range(0, step, block):
            rows = packed[start : start + block]
            bits = np.unpackbits(rows, axis=1, count=n_clusters).astype(float)
            end = row + start + rows.shape[0]
            out[row + start : end] = (2 * (bits @ diff_sums) - column_sums) / total
        row += step
    return out, False


def permutation_null(
    sums: np.ndarray,
    counts: np.ndarray,
    n_b: int,
    *,
    n_resamples: int,
    rng: np.random.Generator,
    exact: bool | None = None,
) -> tuple[np.ndarray, bool]:
    """Null distribution of mean_B - mean_A when whole clusters are relabelled between groups.

    `sums`/`counts` stack group A's clusters then group B's; `n_b` clusters go to B in each
    arrangement. `exact=None`: exact over all C-choose-n_b arrangements when that is no more
    than `n_resamples` (scipy's rule for independent samples) and `MAX_EXACT_ARRANGEMENTS`, else
    Monte Carlo. `exact=True` above the cap is an error.
    """
    n_clusters = sums.shape[0]
    n_arrangements = math.comb(n_clusters, n_b)
    if exact is None:  # the automatic rule never picks an enumeration it would refuse
        exact = n_arrangements <= min(n_resamples, MAX_EXACT_ARRANGEMENTS)
    total_s, total_n = sums.sum(axis=0), counts.sum(axis=0)

    def stat(member: np.ndarray) -> np.ndarray:
        s_b, n_b_ = member @ sums, member @ counts
        with np.errstate(invalid="ignore", divide="ignore"):
            return s_b / n_b_ - (total_s - s_b) / (total_n - n_b_)

    if exact:
        if n_arrangements > MAX_EXACT_ARRANGEMENTS:
            raise ValueError(
                f"exact permutation over {n_arrangements} arrangements is too large (at most "
                f"{MAX_EXACT_ARRANGEMENTS}); pass exact=None or False for Monte Carlo"
            )
        member = np.zeros((n_arrangements, n_clusters))
        for i, chosen in enumerate(itertools.combinations(range(n_clusters), n_b)):
            member[i, list(chosen)] = 1.0
        return stat(member), True
    # uint8 memberships: the same shuffles as float ones (checked in the tests), an eighth of
    # the memory; turned into floats in cache-sized blocks of rows
    base = np.zeros(n_clusters, dtype=np.uint8)
    base[:n_b] = 1
    out = np.empty((n_resamples, sums.shape[1]))
    block = max(1, BOOTSTRAP_CELLS // max(n_clusters, 1))
    row = 0
    for step in _chunks(n_resamples, n_clusters):
        member = rng.permuted(np.broadcast_to(base, (step, n_clusters)), axis=1)
        for start in range(0, step, block):
            rows = member[start : start + block].astype(float)
            out[row + start : row + start + rows.shape[0]] = stat(rows)
        row += step
    return out, False
