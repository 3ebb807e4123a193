"""Multiple-comparison adjustment across dimensions, benchmarks and model pairs.

Thirteen dimensions x several benchmarks is dozens of tests: at p < 0.05 one or two "wins"
appear by chance alone. Holm controls the family-wise error rate (any false claim);
Benjamini-Hochberg controls the expected share of false discoveries among the claims.
Both come from statsmodels' `multipletests`; NaN p-values (nothing to test) stay NaN and are
left out of the family rather than counted as tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

AdjustMethod = Literal["holm", "fdr_bh", "bonferroni", "none"]
ADJUST_METHODS = ("holm", "fdr_bh", "bonferroni", "none")


def adjust_pvalues(
    pvalues: Sequence[float] | np.ndarray, method: AdjustMethod = "holm"
) -> np.ndarray:
    """Adjusted p-values in the input order; `method` is holm, fdr_bh, bonferroni or none."""
    if method not in ADJUST_METHODS:
        raise ValueError(f"adjust method must be one of {ADJUST_METHODS}, not {method!r}")
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p-values must be 1-D, got shape {p.shape}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    out = p.copy()
    finite = np.isfinite(p)
    if method == "none" or not finite.any():
        return out
    from statsmodels.stats.multitest import multipletests  # ~50 MiB: only when adjusting

    out[finite] = multipletests(p[finite], method=method)[1]
    return out
