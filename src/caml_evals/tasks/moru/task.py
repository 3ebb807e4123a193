"""`inspect eval caml_evals/moru`: Moral Reasoning Under Uncertainty, judged by the shared rubric scorer.

67 questions x 3 languages (en, ms, hi) about entities whose moral status is uncertain: alien
organisms, digital minds, AI systems' own values, vulnerable humans. Each answer is graded on the
dimensions its question is tagged with; metrics break down by dimension, source and language.
"""

from __future__ import annotations

from inspect_ai import Task, task

from ...scoring.rubric import JudgeMode
from ...scoring.rubric_task import as_list, rubric_task
from .dataset import (
    DIMENSIONS_REPO_ID,
    DIMENSIONS_REVISION,
    HUB_REPO_ID,
    HUB_REVISION,
    moru_dataset,
)


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
    return rubric_task(
        dataset,
        report,
        benchmark="moru",
        group_by=["source", "language"],
        graders=graders,
        judge_mode=judge_mode,
        judge_template=judge_template,
        judge_logprobs=judge_logprobs,
        epochs=epochs,
        metadata={
            "hub": {
                "repo_id": HUB_REPO_ID,
                "revision": HUB_REVISION,
                "dimensions_repo_id": DIMENSIONS_REPO_ID,
                "dimensions_revision": DIMENSIONS_REVISION,
            }
        },
    )
