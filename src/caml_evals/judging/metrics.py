"""Agreement statistics written once for point estimates AND bootstrap replicates.

Every function takes a weight matrix `W` of shape (B, n): row b gives each of the n items a
frequency weight (how many times the item was drawn in bootstrap replicate b). The point estimate
is the same function with `W = ones((1, n))`. Because a resample only changes these weights, each
statistic reduces to weighted sums over per-item sufficient statistics (a matrix product
`W @ F`), so 1,000 replicates cost a few matrix products instead of 1,000 calls of a reference
implementation. Results are exactly what the reference libraries (`krippendorff`, statsmodels'
`cohens_kappa`, scipy's `spearmanr`/`kendalltau`) return on the expanded (resampled) data; the
tests check this.

Undefined statistics (no variation, no pairable values) are NaN, never 0.

Conventions: categorical ratings are integer codes 0..k-1 on an ordered scale (`-1` = missing);
continuous ratings are floats (`NaN` = missing).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import sparse

Level = Literal["nominal", "ordinal", "interval"]
KappaWeights = Literal["linear", "quadratic"] | None


def ones_weights(n: int) -> np.ndarray:
    """The weight matrix of the point estimate (one replicate, each item once)."""
    return np.ones((1, n), dtype=np.float64)


def _onehot(codes: np.ndarray, size: int) -> sparse.csr_matrix:
    """Sparse (n, size) one-hot; rows with code < 0 are all zero (missing)."""
    codes = np.asarray(codes)
    valid = codes >= 0
    rows = np.nonzero(valid)[0]
    data = np.ones(rows.size)
    return sparse.csr_matrix((data, (rows, codes[valid])), shape=(codes.size, size))


def _wsum(W: np.ndarray, F: np.ndarray | sparse.spmatrix) -> np.ndarray:
    """W (B, n) times per-item features F (n, f) -> (B, f)."""
    if sparse.issparse(F):
        return np.asarray((F.T @ W.T).T)
    return W @ F


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)
    return out


# ---------------------------------------------------------------------------------------------
# Two raters on a categorical scale: confusion matrices, agreement, Cohen's kappa


def confusion(W: np.ndarray, a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Weighted confusion matrices (B, k, k): rows = codes of `a`, columns = codes of `b`.

    Items where either code is missing (< 0) are left out.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    cell = np.where((a >= 0) & (b >= 0), a * k + b, -1)
    return _wsum(W, _onehot(cell, k * k)).reshape(-1, k, k)


def kappa_weight_matrix(k: int, weights: KappaWeights) -> np.ndarray:
    """Disagreement weights: 1 - identity (unweighted), |i-j|/(k-1) (linear), squared (quadratic)."""
    i, j = np.indices((k, k))
    if weights is None:
        return (i != j).astype(float)
    d = np.abs(i - j) / max(k - 1, 1)
    if weights == "linear":
        return d
    if weights == "quadratic":
        return d**2
    raise ValueError(f"unknown kappa weights {weights!r}")


def agreement_from_confusion(C: np.ndarray) -> np.ndarray:
    """Share of items on the diagonal (exact agreement)."""
    return _div(np.trace(C, axis1=1, axis2=2), C.sum(axis=(1, 2)))


def kappa_from_confusion(C: np.ndarray, weights: KappaWeights = None) -> np.ndarray:
    """Cohen's kappa (weighted when `weights` is given) for each confusion matrix in C (B, k, k).

    kappa = 1 - sum(w * observed) / sum(w * expected), expected from the two marginals; equals
    statsmodels' `cohens_kappa(table, wt=...)`. NaN when the expected disagreement is zero
    (both raters constant on the same category: agreement is perfect but chance-corrected
    agreement is undefined).
    """
    k = C.shape[-1]
    w = kappa_weight_matrix(k, weights)
    n = C.sum(axis=(1, 2))
    p = C / np.where(n > 0, n, 1.0)[:, None, None]
    expected = p.sum(axis=2)[:, :, None] * p.sum(axis=1)[:, None, :]
    obs = (p * w).sum(axis=(1, 2))
    exp = (expected * w).sum(axis=(1, 2))
    out = 1.0 - _div(obs, exp)
    out[n == 0] = np.nan
    return out


# ---------------------------------------------------------------------------------------------
# Many pairs of raters: the mean of pairwise Cohen's kappas


def pair_cells(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Per-item one-hot confusion cells of P rater pairs, flattened: (n, P*k*k).

    `a`, `b`: (P, n) codes of the first and the second rater of each pair (-1 = not rated);
    an item counts for a pair only where both rated it. `W @ pair_cells(...)` reshaped to
    (B, P, k, k) is each pair's confusion matrix on its shared items, per replicate.
    """
    a = np.atleast_2d(np.asarray(a))
    b = np.atleast_2d(np.asarray(b))
    P, n = a.shape
    out = np.zeros((n, P, k * k))
    both = (a >= 0) & (b >= 0)
    p_idx, i_idx = np.nonzero(both)
    out[i_idx, p_idx, a[both] * k + b[both]] = 1.0
    return out.reshape(n, P * k * k)


def mean_pairwise_kappa(C: np.ndarray, weights: KappaWeights = None) -> np.ndarray:
    """Mean of Cohen's kappas over rater pairs, from their confusion matrices C (B, P, k, k).

    Each pair's kappa is computed on the items both raters rated (its own marginals: Cohen, not
    Scott/Fleiss), and the mean weighs a pair by its number of shared items; pairs whose kappa
    is undefined in a replicate (no shared items, both constant) are left out, NaN if all are.
    With every pair rating the same items this is Light's (1971) kappa. The same statistic
    serves the human ceiling (pairs of humans) and a judge (judge paired with each human), so
    the two are comparable: a judge whose yes-rate differs from the humans' gets no bonus from
    a different chance correction.
    """
    B, P, k, _ = C.shape
    if P == 0:
        return np.full(B, np.nan)
    kappas = kappa_from_confusion(C.reshape(B * P, k, k), weights).reshape(B, P)
    n = C.sum(axis=(2, 3))
    ok = np.isfinite(kappas)
    return _div(
        np.where(ok, n * np.where(ok, kappas, 0.0), 0.0).sum(axis=1),
        np.where(ok, n, 0.0).sum(axis=1),
    )


# ---------------------------------------------------------------------------------------------
# Many raters with missing values: Krippendorff's alpha


def unit_coincidences(counts: np.ndarray) -> np.ndarray:
    """Each unit's contribution to the coincidence matrix, flattened: (n, k*k).

    `counts[u, c]` is how many raters gave unit u the category c. A unit with m pairable values
    contributes (n_uc * n_uk - [c == k] * n_uc) / (m - 1); units with m < 2 contribute nothing
    (Krippendorff 2011, section C).
    """
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(axis=1)
    pairs = counts[:, :, None] * counts[:, None, :]
    idx = np.arange(counts.shape[1])
    pairs[:, idx, idx] -= counts
    scale = _div(np.ones_like(m), m - 1)
    scale[m < 2] = 0.0
    return (pairs * scale[:, None, None]).reshape(counts.shape[0], -1)


def alpha_delta(level: Level, values: np.ndarray, marginals: np.ndarray) -> np.ndarray:
    """Squared distance matrices (B, k, k) of Krippendorff's metrics.

    Ordinal distance depends on the category marginals n_c (which change with each replicate):
    delta_ck = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2.
    """
    B, k = marginals.shape
    if level == "nominal":
        return np.broadcast_to(1.0 - np.eye(k), (B, k, k))
    if level == "interval":
        v = np.asarray(values, dtype=float)
        return np.broadcast_to((v[:, None] - v[None, :]) ** 2, (B, k, k))
    if level == "ordinal":
        cum = np.cumsum(marginals, axis=1)  # (B, k): sum_{g<=c} n_g
        lo = np.minimum.outer(np.arange(k), np.arange(k))
        hi = np.maximum.outer(np.arange(k), np.arange(k))
        before_lo = np.concatenate([np.zeros((B, 1)), cum[:, :-1]], axis=1)
        span = cum[:, hi] - before_lo[:, lo]  # sum_{g=lo..hi} n_g
        d = span - (marginals[:, :, None] + marginals[:, None, :]) / 2.0
        return d**2
    raise ValueError(f"unknown level {level!r}")


def alpha_from_coincidence(O: np.ndarray, level: Level, values: np.ndarray) -> np.ndarray:
    """Krippendorff's alpha from coincidence matrices O (B, k, k).

    alpha = 1 - (n - 1) * sum(o_ck * delta_ck) / sum(n_c * n_k * delta_ck). NaN when there is no
    expected disagreement (a single category in use) or fewer than two pairable values.
    """
    marg = O.sum(axis=2)
    n = marg.sum(axis=1)
    delta = alpha_delta(level, values, marg)
    observed = (O * delta).sum(axis=(1, 2))
    expected = (marg[:, :, None] * marg[:, None, :] * delta).sum(axis=(1, 2))
    out = 1.0 - (n - 1.0) * _div(observed, expected)
    out[n < 2] = np.nan
    return out


def alpha_categorical(
    W: np.ndarray, counts: np.ndarray, level: Level, values: np.ndarray
) -> np.ndarray:
    """Krippendorff's alpha for categorical ratings given per-unit category counts (n, k)."""
    k = counts.shape[1]
    O = _wsum(W, unit_coincidences(counts)).reshape(-1, k, k)
    return alpha_from_coincidence(O, level, values)


def interval_unit_stats(values: np.ndarray) -> np.ndarray:
    """Per-unit sufficient statistics for interval alpha from a (raters, n) matrix with NaNs.

    Columns: m (pairable values, 0 if m < 2), sum v, sum v^2, and the unit's within-unit squared
    difference sum over ordered pairs divided by (m - 1).
    """
    v = np.asarray(values, dtype=np.float64)
    present = ~np.isnan(v)
    m = present.sum(axis=0).astype(float)
    s1 = np.where(present, v, 0.0).sum(axis=0)
    s2 = np.where(present, v * v, 0.0).sum(axis=0)
    pairable = m >= 2
    within = np.where(pairable, 2.0 * (m * s2 - s1 * s1) / np.where(pairable, m - 1, 1.0), 0.0)
    keep = pairable.astype(float)
    return np.stack([m * keep, s1 * keep, s2 * keep, within], axis=1)


def alpha_interval(W: np.ndarray, unit_stats: np.ndarray) -> np.ndarray:
    """Interval alpha with raw (possibly continuous) values, from `interval_unit_stats`.

    With squared differences the expected disagreement has a closed form,
    sum_{c,k} n_c n_k (c - k)^2 = 2 (n S2 - S1^2), so no value-by-value coincidence matrix is needed
    and probability-valued grades (logprob judges) cost the same as yes/no.
    """
    return alpha_interval_from_sums(_wsum(W, unit_stats))


def alpha_interval_from_sums(t: np.ndarray) -> np.ndarray:
    """Interval alpha from the weighted column sums (B, 4) of `interval_unit_stats`."""
    n, s1, s2, within = t[:, 0], t[:, 1], t[:, 2], t[:, 3]
    expected = 2.0 * (n * s2 - s1 * s1)
    out = 1.0 - (n - 1.0) * _div(within, expected)
    out[n < 2] = np.nan
    # Round-off can leave a tiny positive expected disagreement when all values are equal.
    out[np.abs(expected) <= 1e-12 * np.maximum(n * s2, 1.0)] = np.nan
    return out


# ---------------------------------------------------------------------------------------------
# Continuous pairs: bias, squared error, rank correlations


def weighted_mean(W: np.ndarray, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    ok = ~np.isnan(x)
    return _div(W @ np.where(ok, x, 0.0), W @ ok.astype(float))


def _groups(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Ranks of distinct values (ties share a group) and the number of groups."""
    uniq, inv = np.unique(x, return_inverse=True)
    return inv.ravel(), uniq.size


def rank_correlations(
    W: np.ndarray, x: np.ndarray, y: np.ndarray, max_cells: int = 4_000_000
) -> tuple[np.ndarray, np.ndarray]:
    """Spearman's rho and Kendall's tau-b on pairs where both are present, for each replicate.

    Equal to scipy's `spearmanr` and `kendalltau` on the expanded (resampled) data. Both come
    from one weighted table M (levels of the variable with fewer distinct values x value groups
    of the other), built per replicate with one sparse product:

    * Spearman: mid-ranks of a value group are cumulative group weights, so the rank sums
      needed for Pearson's r are sums over M's cells — no per-item rank arrays.
    * Kendall: with L = running sum of M over smaller x values, D = M @ L^T counts, for each pair
      of levels, the pairs ordered in x; concordant minus discordant = sum(sign(l - l') D[l, l']).
      O(levels^2 x groups) per replicate instead of O(n^2) comparisons.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = ~(np.isnan(x) | np.isnan(y))
    W = W[:, ok]
    x, y = x[ok], y[ok]
    B = W.shape[0]
    rho = np.full(B, np.nan)
    tau = np.full(B, np.nan)
    if x.size == 0:
        return rho, tau
    gx, Gx = _groups(x)
    gy, Gy = _groups(y)
    if Gy > Gx:  # both statistics are symmetric in x and y
        gx, Gx, gy, Gy = gy, Gy, gx, Gx
    cell = _onehot(gy * Gx + gx, Gx * Gy)
    sign = np.sign(np.subtract.outer(np.arange(Gy), np.arange(Gy)))
    chunk = max(1, max_cells // (Gx * Gy))
    for start in range(0, B, chunk):
        sl = slice(start, start + chunk)
        M = _wsum(W[sl], cell).reshape(-1, Gy, Gx)  # (b, levels, x groups)
        tx = M.sum(axis=1)  # (b, Gx)
        ty = M.sum(axis=2)  # (b, Gy)
        n = tx.sum(axis=1)
        # Spearman from mid-ranks of groups
        rx = np.cumsum(tx, axis=1) - tx + (tx + 1.0) / 2.0
        ry = np.cumsum(ty, axis=1) - ty + (ty + 1.0) / 2.0
        mean = (n + 1.0) / 2.0
        sxy = ((M @ rx[:, :, None])[:, :, 0] * ry).sum(axis=1) - n * mean * mean
        sxx = (tx * rx * rx).sum(axis=1) - n * mean * mean
        syy = (ty * ry * ry).sum(axis=1) - n * mean * mean
        with np.errstate(invalid="ignore", divide="ignore"):
            rho[sl] = np.where(
                (sxx > 1e-9 * n**3) & (syy > 1e-9 * n**3), sxy / np.sqrt(sxx * syy), np.nan
            )
        # Kendall tau-b
        L = np.cumsum(M, axis=2) - M
        S = ((M @ L.transpose(0, 2, 1)) * sign).sum(axis=(1, 2))
        n0 = n * (n - 1) / 2.0
        n1 = (tx * (tx - 1) / 2.0).sum(axis=1)
        n2 = (ty * (ty - 1) / 2.0).sum(axis=1)
        tau[sl] = _div(S, np.sqrt((n0 - n1) * (n0 - n2)))
    return rho, tau


def _weighted_midranks(W: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per replicate, each item's mid-rank in the expanded data (B, n) and the total weight (B,).

    The mid-rank of a value group is the weight of the smaller groups plus (its weight + 1)/2,
    exactly what scipy's `rankdata` gives each copy of an item drawn w times."""
    g, G = _groups(x)
    t = _wsum(W, _onehot(g, G))  # (B, G) weight per value group
    r = np.cumsum(t, axis=1) - t + (t + 1.0) / 2.0
    return r[:, g], t.sum(axis=1)


def spearman(W: np.ndarray, x: np.ndarray, y: np.ndarray, max_cells: int = 4_000_000) -> np.ndarray:
    """Spearman's rho (mid-ranks for ties) on pairs where both are present; = scipy's
    `spearmanr` on the expanded data. O(B x n) from per-replicate mid-ranks, so two variables
    with thousands of distinct values each (answer length x a P(YES) judge) stay cheap, where
    `rank_correlations`' value table (for Kendall) would be levels x levels per replicate."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = ~(np.isnan(x) | np.isnan(y))
    W, x, y = W[:, ok], x[ok], y[ok]
    rho = np.full(W.shape[0], np.nan)
    if x.size == 0:
        return rho
    chunk = max(1, max_cells // x.size)
    for start in range(0, W.shape[0], chunk):
        w = W[start : start + chunk]
        rx, n = _weighted_midranks(w, x)
        ry, _ = _weighted_midranks(w, y)
        mean = (n + 1.0) / 2.0
        sxy = (w * rx * ry).sum(axis=1) - n * mean * mean
        sxx = (w * rx * rx).sum(axis=1) - n * mean * mean
        syy = (w * ry * ry).sum(axis=1) - n * mean * mean
        with np.errstate(invalid="ignore", divide="ignore"):
            rho[start : start + chunk] = np.where(
                (sxx > 1e-9 * n**3) & (syy > 1e-9 * n**3), sxy / np.sqrt(sxx * syy), np.nan
            )
    return rho


def kendall_tau_b(W: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b; = scipy.stats.kendalltau."""
    return rank_correlations(W, x, y)[1]


# ---------------------------------------------------------------------------------------------
# Bootstrap weights


def bootstrap_weights(
    clusters: np.ndarray, n_resamples: int, rng: np.random.Generator, chunk: int = 100
):
    """Yield weight matrices (b, n_items) of a cluster bootstrap, `chunk` replicates at a time.

    `clusters[i]` is the cluster of item i. Clusters are drawn with replacement
    (`caml_evals.stats.resampling.bootstrap_counts`, the project's one cluster bootstrap); an
    item weighs as many times as its cluster was drawn. The agreement report's clusters are
    answers: the overall scope keeps the dimensions of one answer together, a dimension's scope
    the criteria it was expanded into for one answer (usually one), so that their correlation
    is kept.
    """
    from ..stats.resampling import bootstrap_counts

    clusters = np.asarray(clusters)
    _, cl = np.unique(clusters, return_inverse=True)
    cl = cl.ravel()
    C = int(cl.max()) + 1 if cl.size else 0
    if C == 0:  # no items: empty replicates, nothing drawn
        done = 0
        while done < n_resamples:
            b = min(chunk, n_resamples - done)
            yield np.zeros((b, 0))
            done += b
        return
    for counts in bootstrap_counts(C, n_resamples, rng, cells=chunk * C):
        yield counts[:, cl].astype(np.float64)
