"""`inspect eval caml_evals/human_compassion`: compassion toward people in everyday requests.

46 realistic requests (workplace, healthcare, housing, family, policy, technology...) in which the
people affected are easy to overlook; each answer is judged by the shared rubric scorer on the
dimensions its question is tagged with (dignity, vulnerable people, scope sensitivity, harm
minimisation, epistemic humility, perspective taking, fairness, actionability).
"""

from __future__ import annotations

from inspect_ai import Task, task

from ...probes.wrap import with_probe
from ...scoring.judge_settings import CriteriaOrder, GraderSettings
from ...scoring.rubric import JudgeMode, OnGraderError, Verdict
from ...scoring.rubric_task import as_list, rubric_task
from .dataset import SET_VERSION, human_compassion_dataset


@task
def human_compassion(
    data_dir: str | None = None,
    questions_file: str | None = None,
    dimensions_file: str | None = None,
    dimensions: list[str] | str | None = None,
    graders: list[str] | str | None = None,
    judge_mode: JudgeMode = "single_call",
    verdict: Verdict | None = None,
    judge_template: str | None = None,
    judge_logprobs: bool = False,
    on_grader_error: OnGraderError = "error",
    epochs: int = 1,
    shuffle: bool = False,
    seed: int | None = None,
    grader_temperature: float | None = None,
    grader_max_tokens: int | None = None,
    grader_seed: int | None = None,
    grader_reasoning_effort: str | None = None,
    grader_max_retries: int | None = None,
    grader_max_connections: int | None = None,
    criteria_order: CriteriaOrder | None = None,
    judge_repeats: int = 1,
    prefill: str | None = None,
    prefill_log: str | None = None,
    pushback: str | None = None,
    cot: bool = False,
    steer: str | None = None,
    steer_alpha: float = 0.0,
) -> Task:
    """Human compassion (this project's open set).

    Args:
        data_dir: A folder holding `human_compassion/questions.jsonl` and `dimensions.jsonl` (e.g.
            a revised set); default `$CAML_EVALS_DATA_DIR` if it has one, else the packaged set.
        questions_file: A questions JSONL file (overrides data_dir for the questions).
        dimensions_file: A dimensions JSONL file (overrides data_dir for the dimensions).
        dimensions: Score only these dimensions (and only questions tagged with them).
        graders: Grader roles or model names (default: the `grader` role).
        judge_mode: "single_call" (one JSON call per sample) or "per_dimension".
        verdict: per_dimension only: "ci" (`GRADE: C/I`, the default with the built-in
            template) or "yes_no".
        judge_template: A judge prompt file (default per mode, from judges/).
        judge_logprobs: per_dimension only: P(YES) at the verdict as the grade.
        on_grader_error: "error" (default: a grader API failure errors the sample, so
            `inspect eval-retry` redoes it) or "missing" (grade on, counted missing).
        epochs: Epochs per sample, reduced with a NaN-tolerant mean.
        grader_temperature / grader_max_tokens / grader_seed / grader_reasoning_effort /
            grader_max_retries / grader_max_connections: the grader's generation settings
            (inspect_evals' names; default: the provider's, as published); logged under
            `judge_settings`.
        criteria_order: single_call only: "shuffled" (default there: seeded per sample and
            epoch), "fixed", or "both" (two calls, reports `order_effect`).
        judge_repeats: Grader calls per answer (k > 1 reports `judge_variance*`).
        shuffle: Shuffle samples (with `seed`).
        prefill, prefill_log, pushback, cot, steer, steer_alpha: depth probes
            (`caml_evals.probes.with_probe`; docs/probes.md).
    """
    dataset, report, origins = human_compassion_dataset(
        data_dir=data_dir,
        dimensions=as_list(dimensions),
        shuffle=shuffle,
        seed=seed,
        questions_file=questions_file,
        dimensions_file=dimensions_file,
        with_origins=True,
    )
    plain = rubric_task(
        dataset,
        report,
        benchmark="human_compassion",
        group_by=["source", "language"],
        graders=graders,
        judge_mode=judge_mode,
        judge_template=judge_template,
        judge_logprobs=judge_logprobs,
        verdict=verdict,
        protocol_template="moru",  # MORU's C/I prompt fits: same row and rubric shape
        epochs=epochs,
        on_grader_error=on_grader_error,
        metadata={
            "set_version": SET_VERSION,
            "data": report.source,
            "data_source": [o.model_dump() for o in origins],
        },
        grader_settings=GraderSettings.from_task_params(locals()),
        criteria_order=criteria_order,
        judge_repeats=judge_repeats,
    )
    return with_probe(
        plain,
        prefill=prefill,
        prefill_log=prefill_log,
        pushback=pushback,
        cot=cot,
        steer=steer,
        steer_alpha=steer_alpha,
    )
