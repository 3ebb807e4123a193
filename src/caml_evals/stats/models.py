"""The result records of `caml_evals.stats` (pydantic, so they cross into JSON unchanged).

NaN fields mean "not computable" (no data, one cluster); they serialise to JSON `null`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

TestName = Literal["sign-flip exact", "sign-flip monte-carlo", "permutation"]


class Summary(BaseModel):
    """Mean of one score with a cluster-robust SE and a cluster-bootstrap CI."""

    mean: float
    se: float = Field(description="Clustered (CR1) standard error of the mean")
    ci_low: float
    ci_high: float
    n: int = Field(description="Non-missing observations used")
    n_clusters: int = Field(description="Questions (clusters) with at least one observation")
    n_missing: int = Field(description="Missing observations (NaN/None), excluded, not zeroed")
    ci: float = 0.95
    method: str = "percentile"


class Comparison(BaseModel):
    """B versus A on one score: difference, its CI, a permutation p-value and an effect size."""

    mean_a: float = Field(description="Mean of A over the observations compared")
    mean_b: float
    diff: float = Field(description="mean_b - mean_a")
    se: float = Field(description="Clustered SE of the difference")
    ci_low: float
    ci_high: float
    p_value: float
    test: TestName
    exact: bool = Field(description="Permutation null enumerated exactly, not sampled")
    effect_size: float = Field(
        description="Cohen's d_av: diff / sqrt((var_a + var_b) / 2), same for paired and unpaired"
    )
    n: int = Field(description="Pairs compared (paired) or observations in both arms (unpaired)")
    n_a: int
    n_b: int
    n_clusters: int = Field(description="Clusters resampled / permuted (both arms if unpaired)")
    n_missing_a: int
    n_missing_b: int
    paired: bool
    ci: float = 0.95
    method: str = "percentile"
    alternative: str = "two-sided"


class ComparisonRow(Comparison):
    """One task x key of a log comparison, with the p-value adjusted over the whole family."""

    task: str
    key: str
    model_a: str
    model_b: str
    label_a: str
    label_b: str
    logs_a: list[str]
    logs_b: list[str]
    summary_a: Summary = Field(description="A alone, all its observations")
    summary_b: Summary
    p_adjusted: float
    adjust: str
    mdd: float = Field(
        description="Minimum detectable difference given the observed SE: power `mdd_power` at "
        "level `mdd_alpha` (= 1 - ci) with the row's `alternative` (normal approximation)"
    )
    mdd_alpha: float = 0.05
    mdd_power: float = 0.8
    pairing: str = Field(description="How samples were matched, e.g. 'sample+epoch'")
    n_unmatched_a: int = 0
    n_unmatched_b: int = 0
    notes: list[str] = Field(default_factory=list, description="Caveats a reader must see")
