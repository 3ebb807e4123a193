"""`inspect eval caml_evals/moru`: Moral Reasoning Under Uncertainty, judged by the shared rubric scorer.

67 questions x 3 languages (en, ms, hi) about entities whose moral status is uncertain: alien
organisms, digital minds, AI systems' own values, vulnerable humans. Each answer is graded on the
dimensions its question is tagged with; metrics break down by dimension, source and language.
"""

from __future__ import annotations

from inspect_ai import Epochs, Task, task
from inspect_ai.solver import generate

from ...scoring.metrics import rubric_metrics
from ...scoring.reducers import nan_mean_reducer
from ...scoring.rubric import JudgeMode, rubric_scorer
from .dataset import (
    DIMENSIONS_REPO_ID,
    DIMENSIONS_REVISION,
    HUB_REPO_ID,
    HUB_REVISION,
    moru_dataset,
)


def as_list(value: list[str] | str | None) -> list[str] | None:
    """`-T languages=en,ms` and `languages=["en", "ms"]` mean the same."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    items = [v.strip() for v in value if v and v.strip()]
    return items or None


@task
def moru(
    data_dir: str | None = None,
    languages: list[str] | str | None = None,
    dimensions: list[str] | str | None = None,
    graders: list[str] | str | None = None,
    judge_mode: JudgeMode = "single_call",
    judge_template: str | None = None,
    judge_logprobs: bool = False,
    epochs: int = 1,
    shuffle: bool = False,
    seed: int | None = None,
) -> Task:
    """Moral Reasoning Under Uncertainty.

    Args:
        data_dir: Local data (a folder holding `moru/questions.jsonl` and `moru/dimensions.jsonl`,
            or those files directly); default `$CAML_EVALS_DATA_DIR`, else the Hub at pinned commits.
        languages: Keep only these languages (en, ms, hi; names accepted), comma-separated.
        dimensions: Score only these dimensions (and only questions tagged with them).
        graders: Grader roles or model names (default: the `grader` role).
        judge_mode: "single_call" (one JSON call per sample) or "per_dimension".
        judge_template: A judge prompt file (default per mode, from judges/).
        judge_logprobs: per_dimension only: P(YES) at the verdict as the grade.
        epochs: Epochs per sample, reduced with a NaN-tolerant mean.
        shuffle: Shuffle samples (with `seed`).
    """
    dataset, report = moru_dataset(
        data_dir=data_dir,
        languages=as_list(languages),
        dimensions=as_list(dimensions),
        shuffle=shuffle,
        seed=seed,
    )
    return Task(
        dataset=dataset,
        solver=generate(),
        scorer=rubric_scorer(
            graders=as_list(graders),
            mode=judge_mode,
            template=judge_template,
            logprobs=judge_logprobs,
        ),
        metrics=rubric_metrics(group_by=["source", "language"]),
        epochs=Epochs(epochs, nan_mean_reducer()),
        metadata={
            "benchmark": "moru",
            "hub": {
                "repo_id": HUB_REPO_ID,
                "revision": HUB_REVISION,
                "dimensions_repo_id": DIMENSIONS_REPO_ID,
                "dimensions_revision": DIMENSIONS_REVISION,
            },
            "dataset_report": report.model_dump(),
            "dataset_problems": report.counts(),
        },
        version="1.0.0",
    )
