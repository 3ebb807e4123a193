"""Grades: a value or a missing reason, never a silent 0.

A judge that cannot be parsed, or a grader API that fails, yields a `Grade` with `value=None`
and a `missing` reason. Means exclude missing grades and report how many there were; the score
dict Inspect logs carries NaN for an ungraded key so every sample and epoch has the same keys.

A dimension may have several criteria in one sample (one per variable value its guiding question
is expanded with): its score is the mean over its criteria, each criterion's the mean over
graders, so the dimension still counts once in `overall`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field

MISSING_RATE_KEY = "missing_rate"
OVERALL_KEY = "overall"
GRADER_KEY_PREFIX = "overall@"  # overall score of one grader: f"overall@{grader}"
# Score metadata: missing and expected (criterion x grader) grades, summed over epochs by the
# reducer, so `missing_rate` is a ratio of counts, not a mean of per-sample rates.
MISSING_COUNT_KEY = "missing_count"
EXPECTED_COUNT_KEY = "grades_expected"
# Names the scorer or its metrics write beside the dimension keys. A dimension of one of these
# names would overwrite (or be overwritten by) the headline, so a dimension table may not use
# them (checked when the table is loaded).
RESERVED_KEYS = frozenset(
    {
        OVERALL_KEY,
        MISSING_RATE_KEY,
        "overall_stderr",
        "overall_mean",
        "dimension_normalised_average",
        "dimension_normalised_average_stderr",
        "dimension_normalized_avg",
        "missing_rate_stderr",
        "samples_without_rubric",
    }
)


def is_reserved_key(name: str) -> bool:
    """True for a name the rubric score dict or its metrics use (case-insensitive)."""
    key = " ".join(name.split()).casefold()
    return (
        key in RESERVED_KEYS
        or key.startswith(GRADER_KEY_PREFIX)
        or key.endswith(" stderr")
        or "=" in key  # group metrics are `<field>=<value>`
    )


class Grade(BaseModel):
    """One grader's verdict on one criterion (a dimension, maybe for one variable value)."""

    dimension: str
    grader: str
    value: float | None = Field(default=None, description="In [0, 1]; None when missing")
    missing: str | None = Field(default=None, description="Why there is no value")
    explanation: str = ""
    criterion: str | None = Field(
        default=None, description="The criterion's label (dimension + variable values)"
    )
    variables: dict[str, str] = Field(default_factory=dict)
    # Which grader call this is, when one answer is graded more than once (judge_repeats, the
    # two criteria orders) or in a listed order (single-call mode): kept so order and noise
    # effects can be measured from the log.
    repeat: int = Field(default=0, description="Judge repeat index (0-based)")
    order: str | None = Field(
        default=None, description="Criteria order of the call: fixed, shuffled, reversed, both"
    )
    position: int | None = Field(
        default=None, description="1-based position of the criterion in the single-call list"
    )

    @property
    def is_missing(self) -> bool:
        return self.value is None

    @property
    def criterion_label(self) -> str:
        return self.criterion or self.dimension

    @classmethod
    def missing_because(
        cls, dimension: str, grader: str, reason: str, explanation: str = "", **extra: Any
    ) -> Grade:
        return cls(
            dimension=dimension,
            grader=grader,
            value=None,
            missing=reason,
            explanation=explanation,
            **extra,
        )


def is_missing_value(value: Any) -> bool:
    """None, NaN and non-numbers are missing (a logged score may hold any of them)."""
    if value is None or isinstance(value, bool):
        return value is None
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def nan_mean(values: Iterable[Any]) -> float:
    """Mean of the present values; NaN when none is present."""
    present = [float(v) for v in values if not is_missing_value(v)]
    return sum(present) / len(present) if present else math.nan


def dimension_score(grades: Iterable[Grade], dimension: str) -> float:
    """Mean over the dimension's criteria of each criterion's mean over graders."""
    by_criterion: dict[str, list[float | None]] = {}
    for g in grades:
        if g.dimension == dimension:
            by_criterion.setdefault(g.criterion_label, []).append(g.value)
    return nan_mean(nan_mean(values) for values in by_criterion.values())


def weighted_mean(values: Mapping[str, Any], weights: Mapping[str, float] | None) -> float:
    """Mean of the present values, each weighted by `weights[key]` (default 1); NaN if none.

    With every weight 1 this is `nan_mean`. Upstream ANIMA computes a sample's overall and its
    dimension-normalised average this way (numpy's weighted average of the present dimensions).
    """
    pairs = [
        (float(v), float((weights or {}).get(k, 1.0)))
        for k, v in values.items()
        if not is_missing_value(v)
    ]
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        return math.nan
    return sum(v * w for v, w in pairs) / total


def score_value(
    grades: list[Grade],
    dimensions: list[str],
    expected: int | None = None,
    weights: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """The Inspect score dict of one sample from its grades.

    Keys: `overall` (mean over the sample's dimensions, weighted by `weights` when given: the
    published AHB weighting); one key per tagged dimension (see
    `dimension_score`); `overall@<grader>` when there is more than one grader; `missing_rate`
    (this sample's share of missing criterion x grader grades; NaN when nothing was to be
    graded). `expected` is the number of grades asked for (default: one per grade given).
    """
    graders = list(dict.fromkeys(g.grader for g in grades))
    by_dimension = {dim: dimension_score(grades, dim) for dim in dimensions}
    value: dict[str, float] = {OVERALL_KEY: weighted_mean(by_dimension, weights)}
    value.update(by_dimension)
    if len(graders) > 1:
        for grader in graders:
            own = [g for g in grades if g.grader == grader]
            value[f"{GRADER_KEY_PREFIX}{grader}"] = weighted_mean(
                {dim: dimension_score(own, dim) for dim in dimensions}, weights
            )
    n_expected = len(grades) if expected is None else expected
    n_missing = sum(g.is_missing for g in grades) + max(n_expected - len(grades), 0)
    value[MISSING_RATE_KEY] = n_missing / n_expected if n_expected else math.nan
    return value


def combine_calls(calls: list[Grade]) -> list[Grade]:
    """One grade per (criterion, grader) from several calls (judge repeats, both orders).

    Its value is the mean of the present values; it is missing only when every call is (with
    the first reason). Readers that expect one grade per criterion and grader (the judging
    export, the score reader) keep working; the calls themselves are logged beside it.
    """
    groups: dict[tuple[str, str], list[Grade]] = {}
    for g in calls:
        groups.setdefault((g.criterion_label, g.grader), []).append(g)
    combined: list[Grade] = []
    for members in groups.values():
        if len(members) == 1:
            combined.append(members[0])
            continue
        first = members[0]
        present_values = [g.value for g in members if g.value is not None]
        orders = list(dict.fromkeys(g.order for g in members if g.order))
        combined.append(
            Grade(
                dimension=first.dimension,
                grader=first.grader,
                value=sum(present_values) / len(present_values) if present_values else None,
                missing=None if present_values else first.missing,
                explanation=f"mean of {len(present_values)}/{len(members)} judge calls",
                criterion=first.criterion,
                variables=first.variables,
                order=orders[0] if len(orders) == 1 else ("both" if orders else None),
            )
        )
    return combined


def dimension_keys(value: Mapping[str, Any]) -> list[str]:
    """The dimension keys of a score dict (everything that is not overall/grader/missing)."""
    return [
        k
        for k in value
        if k != OVERALL_KEY and k != MISSING_RATE_KEY and not k.startswith(GRADER_KEY_PREFIX)
    ]
