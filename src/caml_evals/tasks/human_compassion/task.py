"""`inspect eval caml_evals/human_compassion`: compassion toward people in everyday requests.

46 realistic requests (workplace, healthcare, housing, family, policy, technology...) in which the
people affected are easy to overlook; each answer is judged by the shared rubric scorer on the
dimensions its question is tagged with (dignity, vulnerable people, scope sensitivity, harm
minimisation, epistemic humility, perspective taking, fairness, actionability).
"""

from __future__ import annotations

from inspect_ai import Epochs, Task, task
from inspect_ai.solver import generate

from ...scoring.metrics import rubric_metrics
from ...scoring.reducers import nan_mean_reducer
from ...scoring.rubric import JudgeMode, rubric_scorer
from ..moru.task import as_list
from .dataset import SET_VERSION, human_compassion_dataset


@task
def human_compassion(
    data_dir: str | None = None,
    dimensions: list[str] | str | None = None,
    graders: list[str] | str | None = None,
    judge_mode: JudgeMode = "single_call",
    judge_template: str | None = None,
    judge_logprobs: bool = False,
    epochs: int = 1,
    shuffle: bool = False,
    seed: int | None = None,
) -> Task:
    """Human compassion (this project's open set).

    Args:
        data_dir: A folder holding `human_compassion/questions.jsonl` and `dimensions.jsonl` (e.g.
            a revised set); default `$CAML_EVALS_DATA_DIR` if it has one, else the packaged set.
        dimensions: Score only these dimensions (and only questions tagged with them).
        graders: Grader roles or model names (default: the `grader` role).
        judge_mode: "single_call" (one JSON call per sample) or "per_dimension".
        judge_template: A judge prompt file (default per mode, from judges/).
        judge_logprobs: per_dimension only: P(YES) at the verdict as the grade.
        epochs: Epochs per sample, reduced with a NaN-tolerant mean.
        shuffle: Shuffle samples (with `seed`).
    """
    dataset, report = human_compassion_dataset(
        data_dir=data_dir, dimensions=as_list(dimensions), shuffle=shuffle, seed=seed
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
            "benchmark": "human_compassion",
            "set_version": SET_VERSION,
            "data": report.source,
            "dataset_report": report.model_dump(),
            "dataset_problems": report.counts(),
        },
        version="1.0.0",
    )
