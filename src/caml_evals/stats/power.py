"""Power: how small a difference a design can detect, and how many questions a target needs.

Design: `n_questions` questions, each observed `n_epochs` times (epochs x variable expansions)
per model. `sd` is the SD of one observation of the compared quantity (for a paired design:
of the per-observation difference B - A; for unpaired: of one arm's scores). `icc` is the share
of that variance that sits between questions (the correlation of two epochs of one question).
A question's mean then has SD `sd * sqrt(icc + (1 - icc) / n_epochs)`: more epochs only shrink
the within-question part, which is why adding questions beats adding epochs once icc is large.

Judge noise: `judge_share` is the share of one observation's variance that is the judge's own
(the `judge_variance_share` metric of a run with `-T judge_repeats=k`: grading the same answer
again moves it by that much), and `judge_repeats` how many judge calls each answer gets. The
within-question part then splits into answer sampling, shrunk by epochs, and judge noise, shrunk
by epochs x repeats: a question's mean has SD
`sd * sqrt(icc + (1 - icc - judge_share) / n_epochs + judge_share / (n_epochs * judge_repeats))`
(`sd`, `icc` and `judge_share` all describe one single-call judged score). With `judge_share=0`
(the default) this is the formula above.

The t-test power calculations are statsmodels' (`TTestPower` for paired, `TTestIndPower` for
two independent arms of `n_questions` each); the test acts on question means, as ours do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel
from scipy.special import ndtri  # the standard normal quantile (scipy.stats.norm.ppf)

from .resampling import cluster_sums, encode_clusters

Alternative = Literal["two-sided", "larger", "smaller"]

DEFAULT_ICC = 0.5  # between-question share of variance when it has not been estimated


def _check(
    sd: float,
    n_epochs: int,
    icc: float,
    alpha: float,
    power: float,
    judge_share: float = 0.0,
    judge_repeats: int = 1,
) -> None:
    if not 0 <= judge_share <= 1 - icc + 1e-12:
        raise ValueError(
            f"judge_share must be in [0, 1 - icc] = [0, {1 - icc:g}], got {judge_share}"
        )
    if judge_repeats < 1:
        raise ValueError(f"judge_repeats must be >= 1, got {judge_repeats}")
    if not sd > 0:
        raise ValueError(f"sd must be positive, got {sd}")
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be >= 1, got {n_epochs}")
    if not 0 <= icc <= 1:
        raise ValueError(f"icc must be in [0, 1], got {icc}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha}, {power}")


def question_sd(
    sd: float,
    n_epochs: int = 1,
    icc: float = DEFAULT_ICC,
    judge_share: float = 0.0,
    judge_repeats: int = 1,
) -> float:
    """SD of one question's mean over `n_epochs` answers, each judged `judge_repeats` times."""
    if not 0 <= judge_share <= 1 - icc + 1e-12:
        raise ValueError(
            f"judge_share must be in [0, 1 - icc] = [0, {1 - icc:g}], got {judge_share}"
        )
    if judge_repeats < 1:
        raise ValueError(f"judge_repeats must be >= 1, got {judge_repeats}")
    within = (1 - icc - judge_share) / n_epochs + judge_share / (n_epochs * judge_repeats)
    return sd * math.sqrt(icc + max(within, 0.0))


def minimum_detectable_difference(
    sd: float,
    n_questions: int,
    n_epochs: int = 1,
    icc: float = DEFAULT_ICC,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    paired: bool = True,
    alternative: Alternative = "two-sided",
    judge_share: float = 0.0,
    judge_repeats: int = 1,
) -> float:
    """Smallest true difference detected with probability `power` at level `alpha`."""
    _check(sd, n_epochs, icc, alpha, power, judge_share, judge_repeats)
    if n_questions < 2:
        raise ValueError(f"need at least 2 questions, got {n_questions}")
    d = _solve_t_power(paired, n_questions, alpha=alpha, power=power, alternative=alternative)
    return d * question_sd(sd, n_epochs, icc, judge_share, judge_repeats)


def questions_needed(
    diff: float,
    sd: float,
    n_epochs: int = 1,
    icc: float = DEFAULT_ICC,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    paired: bool = True,
    alternative: Alternative = "two-sided",
    judge_share: float = 0.0,
    judge_repeats: int = 1,
) -> int:
    """Questions (per arm, if unpaired) needed to detect `diff` with the given power."""
    _check(sd, n_epochs, icc, alpha, power, judge_share, judge_repeats)
    if diff == 0:
        raise ValueError("a difference of 0 cannot be detected")
    effect = abs(diff) / question_sd(sd, n_epochs, icc, judge_share, judge_repeats)
    n = _solve_t_power(
        paired, None, effect_size=effect, alpha=alpha, power=power, alternative=alternative
    )
    return max(2, math.ceil(n - 1e-9))


def _solve_t_power(paired: bool, n_questions: int | None, **known: Any) -> float:
    """statsmodels' t-test power equation solved for the one argument left None: paired
    (`TTestPower`, questions = pairs) or two equal arms (`TTestIndPower`, questions per arm)."""
    from statsmodels.stats.power import TTestIndPower, TTestPower  # heavy: only when asked

    if paired:
        result = TTestPower().solve_power(nobs=n_questions, **known)
    else:
        result = TTestIndPower().solve_power(nobs1=n_questions, ratio=1.0, **known)
    return float(np.squeeze(result))


def mdd_from_se(
    se: float, alpha: float = 0.05, power: float = 0.8, alternative: str = "two-sided"
) -> float:
    """Minimum detectable difference (normal approximation) for an estimate with this SE.

    `(z_{1-alpha/2} + z_power) * se` two-sided; `(z_{1-alpha} + z_power) * se` for a one-sided
    test (`alternative` "less"/"greater", as in `compare`, or "smaller"/"larger", as above).
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha}, {power}")
    if alternative == "two-sided":
        z_alpha = ndtri(1 - alpha / 2)
    elif alternative in ("less", "greater", "smaller", "larger"):
        z_alpha = ndtri(1 - alpha)
    else:
        raise ValueError(f"alternative must be two-sided, less or greater, not {alternative!r}")
    if not np.isfinite(se):
        return math.nan
    return float((z_alpha + ndtri(power)) * se)


class PowerInputs(BaseModel):
    """Design quantities estimated from observed scores (feed them to the functions above)."""

    sd: float
    icc: float
    n_questions: int
    n_per_question: float


def estimate_icc(values: Sequence[float] | np.ndarray, clusters: Sequence | np.ndarray) -> float:
    """One-way ANOVA ICC(1) for unbalanced clusters, clipped to [0, 1]; NaN = missing."""
    values = np.asarray(values, dtype=float)
    keep = ~np.isnan(values)
    codes = encode_clusters(np.asarray(clusters, dtype=object)[keep], int(keep.sum()))
    x = values[keep]
    sums, counts = cluster_sums(x, codes)
    sums, counts = sums[:, 0], counts[:, 0]
    k, n = len(counts), counts.sum()
    if k < 2 or n <= k:
        return math.nan
    grand = x.mean()
    means = sums / counts
    msb = (counts * (means - grand) ** 2).sum() / (k - 1)
    msw = ((x - means[codes]) ** 2).sum() / (n - k)
    n0 = (n - (counts**2).sum() / n) / (k - 1)
    denom = msb + (n0 - 1) * msw
    if denom <= 0:
        return 0.0
    return float(min(1.0, max(0.0, (msb - msw) / denom)))


def power_inputs(
    values: Sequence[float] | np.ndarray, clusters: Sequence | np.ndarray
) -> PowerInputs:
    """sd, icc and sizes from one arm's scores or from paired differences, per question."""
    values = np.asarray(values, dtype=float)
    keep = ~np.isnan(values)
    x = values[keep]
    n_questions = len(set(np.asarray(clusters, dtype=object)[keep].astype(str)))
    return PowerInputs(
        sd=float(np.std(x, ddof=1)) if x.size > 1 else math.nan,
        icc=estimate_icc(values, clusters),
        n_questions=n_questions,
        n_per_question=float(x.size / n_questions) if n_questions else math.nan,
    )
