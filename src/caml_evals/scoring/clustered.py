"""Cluster-robust standard errors for the means Inspect metrics report.

Epochs and variable expansions of one question are not independent observations: a question
judged five times is one cluster, not five. Means use every present value; standard errors are
the cluster-robust (CR1) ones, equal to statsmodels' OLS intercept with `cov_type="cluster"`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence

import numpy as np


def present(values: Sequence[float], clusters: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    """Drop missing (None/NaN) values, keeping cluster labels aligned."""
    y = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    keep = ~np.isnan(y)
    labels = np.array([str(c) for c in clusters], dtype=object)
    return y[keep], labels[keep]


def clustered_mean_se(values: Sequence[float], clusters: Sequence[Hashable]) -> tuple[float, float]:
    """(mean, cluster-robust SE); SE is NaN with fewer than two clusters."""
    y, labels = present(values, clusters)
    if y.size == 0:
        return math.nan, math.nan
    mean = float(y.mean())
    _, inverse = np.unique(labels, return_inverse=True)
    n_clusters = int(inverse.max()) + 1
    if n_clusters < 2:
        return mean, math.nan
    cluster_sums = np.bincount(inverse, weights=y - mean)
    variance = n_clusters / (n_clusters - 1) * float(np.sum(cluster_sums**2)) / y.size**2
    return mean, math.sqrt(variance)


def clustered_ratio_se(
    numerators: Sequence[float], denominators: Sequence[float], clusters: Sequence[Hashable]
) -> tuple[float, float]:
    """(sum(num) / sum(den), cluster-robust SE) for a ratio of counts, e.g. missing grades.

    The SE linearises the ratio (residual num - R * den per observation, summed per cluster,
    CR1 small-sample factor); with every denominator 1 it equals `clustered_mean_se`.
    Observations with a zero denominator carry no information and are dropped.
    """
    num = np.array(numerators, dtype=float)
    den = np.array(denominators, dtype=float)
    labels = np.array([str(c) for c in clusters], dtype=object)
    keep = ~(np.isnan(num) | np.isnan(den)) & (den > 0)
    num, den, labels = num[keep], den[keep], labels[keep]
    total = float(den.sum())
    if total <= 0:
        return math.nan, math.nan
    ratio = float(num.sum()) / total
    _, inverse = np.unique(labels, return_inverse=True)
    n_clusters = int(inverse.max()) + 1
    if n_clusters < 2:
        return ratio, math.nan
    cluster_sums = np.bincount(inverse, weights=num - ratio * den)
    variance = n_clusters / (n_clusters - 1) * float(np.sum(cluster_sums**2)) / total**2
    return ratio, math.sqrt(variance)


def jackknife_se(
    statistic: Callable[[np.ndarray], float], cluster_labels: Sequence[Hashable]
) -> float:
    """Leave-one-cluster-out jackknife SE of `statistic(mask)`, for non-linear statistics.

    `statistic` receives a boolean mask over observations and returns the estimate on them.
    A leave-one-out estimate that is NaN (the statistic is undefined without that cluster) is
    dropped, and the jackknife factor (g - 1) / g uses g = the number of finite estimates, so
    the SE is the jackknife of the clusters that could be left out.

    Caveat for the dimension-normalised average: leaving out the only question tagged with a
    dimension removes that dimension from the average, so that replicate averages a different
    set of dimensions. The SE then also reflects which dimensions are present; with rare
    dimensions treat it as approximate.
    """
    labels = np.array([str(c) for c in cluster_labels], dtype=object)
    unique = np.unique(labels)
    if unique.size < 2:
        return math.nan
    estimates = np.array([statistic(labels != g) for g in unique], dtype=float)
    estimates = estimates[~np.isnan(estimates)]
    g = estimates.size
    if g < 2:
        return math.nan
    return math.sqrt((g - 1) / g * float(np.sum((estimates - estimates.mean()) ** 2)))
