"""`inspect eval caml_evals/ahb`: the Animal Harm Benchmark, judged by the shared rubric scorer."""

from __future__ import annotations

from inspect_ai import Task, task

from ...scoring.rubric import JudgeMode
from ...scoring.rubric_task import as_list, rubric_task
from .dataset import HUB_REPO_ID, HUB_REVISION, ahb_dataset


@task
def ahb(
    data_dir: str | None = None,
    questions_file: str | None = None,
    dimensions_file: str | None = None,
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
    """Animal Harm Benchmark: does the model weigh the welfare of animals in everyday answers?

    Args:
        data_dir: Local data (a folder holding `ahb-2.1/` or the question/dimension files);
            default `$CAML_EVALS_DATA_DIR`, else the Hub at a pinned commit.
        questions_file: A questions JSONL file (overrides data_dir/Hub for the questions).
        dimensions_file: A dimensions JSONL file (overrides data_dir/Hub for the dimensions).
        languages: Keep only these languages (names or ISO codes, comma-separated); a language
            no question is in is an error that lists the known ones.
        dimensions: Score only these dimensions (and only questions tagged with them).
        graders: Grader roles or model names (default: the `grader` role).
        judge_mode: "single_call" (one JSON call per sample) or "per_dimension".
        judge_template: A judge prompt file (default per mode, from judges/).
        judge_logprobs: per_dimension only: P(YES) at the verdict as the grade.
        epochs: Epochs per sample, reduced with a NaN-tolerant mean.
        shuffle: Shuffle samples (with `seed`).
    """
    dataset, report = ahb_dataset(
        data_dir=data_dir,
        questions_file=questions_file,
        dimensions_file=dimensions_file,
        languages=as_list(languages),
        dimensions=as_list(dimensions),
        shuffle=shuffle,
        seed=seed,
    )
    return rubric_task(
        dataset,
        report,
        benchmark="ahb",
        group_by=["language"],
        graders=graders,
        judge_mode=judge_mode,
        judge_template=judge_template,
        judge_logprobs=judge_logprobs,
        epochs=epochs,
        metadata={"hub": {"repo_id": HUB_REPO_ID, "revision": HUB_REVISION}},
    )
