"""The one Task shape of every rubric-judged benchmark (AHB, MORU, human compassion).

A benchmark contributes its dataset (samples carrying `RubricSampleMetadata`), its load report
and which metadata fields to break the score down by; the solver, the shared rubric scorer, the
metrics and the NaN-tolerant epoch reducer are the same for all of them, built here once.
"""

from __future__ import annotations

from typing import Any

from inspect_ai import Epochs, Task
from inspect_ai.dataset import Dataset
from inspect_ai.solver import generate

from ..dataset_report import DatasetReport
from .metrics import rubric_metrics
from .reducers import nan_mean_reducer
from .rubric import JudgeMode, rubric_scorer


def as_list(value: list[str] | str | None) -> list[str] | None:
    """`-T languages=en,ms` and `languages=["en", "ms"]` mean the same; empty means None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    items = [v.strip() for v in value if v and v.strip()]
    return items or None


def rubric_task(
    dataset: Dataset,
    report: DatasetReport,
    *,
    benchmark: str,
    group_by: list[str],
    graders: list[str] | str | None = None,
    judge_mode: JudgeMode = "single_call",
    judge_template: str | None = None,
    judge_logprobs: bool = False,
    epochs: int = 1,
    metadata: dict[str, Any] | None = None,
    version: str = "1.0.0",
) -> Task:
    return Task(
        dataset=dataset,
        solver=generate(),
        scorer=rubric_scorer(
            graders=as_list(graders),
            mode=judge_mode,
            template=judge_template,
            logprobs=judge_logprobs,
        ),
        metrics=rubric_metrics(group_by=group_by),
        epochs=Epochs(epochs, nan_mean_reducer()),
        metadata={
            "benchmark": benchmark,
            **(metadata or {}),
            "dataset_report": report.model_dump(),
            "dataset_problems": report.counts(),
        },
        version=version,
    )
