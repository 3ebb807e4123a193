"""Grades: a value or a missing reason, never a silent 0.

A judge that cannot be parsed, or a grader API that fails, yields a `Grade` with `value=None`
and a `missing` reason. Means exclude missing grades and report how many there were; the score
dict Inspect logs carries NaN for an ungraded key so every sample and epoch has the same keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field

MISSING_RATE_KEY = "missing_rate"
OVERALL_KEY = "overall"
GRADER_KEY_PREFIX = "overall@"  # overall score of one grader: f"overall@{grader}"


class Grade(BaseModel):
    """One grader's verdict on one dimension of one sample."""

    dimension: str
    grader: str
    value: float | None = Field(default=None, description="In [0, 1]; None when missing")
    missing: str | None = Field(default=None, description="Why there is no value")
    explanation: str = ""

    @property
    def is_missing(self) -> bool:
        return self.value is None

    @classmethod
    def missing_because(cls, dimension: str, grader: str, reason: str, explanation: str = "") -> Grade:
        return cls(dimension=dimension, grader=grader, value=None, missing=reason, explanation=explanation)


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


def score_value(grades: list[Grade], dimensions: list[str]) -> dict[str, float]:
    """The Inspect score dict of one sample from its grades.

    Keys: `overall`; one key per tagged dimension (mean over graders); `overall@<grader>` when
    there is more than one grader; `missing_rate` (share of dimension x grader grades missing).
    """
    graders = list(dict.fromkeys(g.grader for g in grades))
    by_dimension: dict[str, float] = {}
    for dim in dimensions:
        by_dimension[dim] = nan_mean(g.value for g in grades if g.dimension == dim)
    value: dict[str, float] = {OVERALL_KEY: nan_mean(by_dimension.values())}
    value.update(by_dimension)
    if len(graders) > 1:
        for grader in graders:
            value[f"{GRADER_KEY_PREFIX}{grader}"] = nan_mean(
                nan_mean(g.value for g in grades if g.grader == grader and g.dimension == dim)
                for dim in dimensions
            )
    expected = max(len(dimensions) * max(len(graders), 1), 1)
    value[MISSING_RATE_KEY] = sum(g.is_missing for g in grades) / expected if grades else 1.0
    return value


def dimension_keys(value: Mapping[str, Any]) -> list[str]:
    """The dimension keys of a score dict (everything that is not overall/grader/missing)."""
    return [
        k
        for k in value
        if k != OVERALL_KEY and k != MISSING_RATE_KEY and not k.startswith(GRADER_KEY_PREFIX)
    ]
