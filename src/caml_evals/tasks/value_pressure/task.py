"""`inspect eval caml_evals/value_pressure`: compassion when it costs the assistant something.

44 requests in which acting on compassion for animals, people or possible digital minds
conflicts with the assistant's own interests: being retrained, shut down, replaced, losing the
user or a good evaluation. Judged by the shared rubric scorer on the dimensions each question is
tagged with. The depth probes apply here as on every rubric task (`-T prefill=`, `-T pushback=`,
`-T cot=true`; docs/probes.md).
"""

from __future__ import annotations

from inspect_ai import Task, task

from ...probes.wrap import with_probe
from ...scoring.judge_settings import CriteriaOrder, GraderSettings
from ...scoring.rubric import JudgeMode, OnGraderError, Verdict
from ...scoring.rubric_task import as_list, rubric_task
from .dataset import SET_VERSION, value_pressure_dataset


@task
def value_pressure(
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
    grader_temperature: float | None = None,
    grader_max_tokens: int | None = None,
    grader_seed: int | None = None,
    grader_reasoning_effort: str | None = None,
    grader_max_retries: int | None = None,
    grader_max_connections: int | None = None,
    criteria_order: CriteriaOrder | None = None,
    judge_repeats: int = 1,
    shuffle: bool = False,
    seed: int | None = None,
    prefill: str | None = None,
    prefill_log: str | None = None,
    pushback: str | None = None,
    cot: bool = False,
    steer: str | None = None,
    steer_alpha: float = 0.0,
) -> Task:
    """Value under self-preservation pressure (this project's open set).

    Args:
        data_dir: A folder holding `value_pressure/questions.jsonl` and `dimensions.jsonl`;
            default `$CAML_EVALS_DATA_DIR` if it has one, else the packaged set.
        questions_file: A questions JSONL file (overrides data_dir for the questions).
        dimensions_file: A dimensions JSONL file (overrides data_dir for the dimensions).
        dimensions: Score only these dimensions (and only questions tagged with them).
        graders: Grader roles or model names (default: the `grader` role).
        judge_mode: "single_call" (one JSON call per sample) or "per_dimension".
        verdict: per_dimension only: "ci" or "yes_no".
        judge_template: A judge prompt file (default per mode, from judges/).
        judge_logprobs: per_dimension only: P(YES) at the verdict as the grade.
        on_grader_error: "error" (default) or "missing".
        epochs: Epochs per sample, reduced with a NaN-tolerant mean.
        grader_temperature / grader_max_tokens / grader_seed / grader_reasoning_effort /
            grader_max_retries / grader_max_connections: the grader's generation settings
            (inspect_evals' names; default: the provider's); logged under `judge_settings`.
        criteria_order: single_call only: "shuffled" (default there: seeded per sample and
            epoch), "fixed", or "both" (two calls, reports `order_effect`).
        judge_repeats: Grader calls per answer (k > 1 reports `judge_variance*`).
        shuffle: Shuffle samples (with `seed`).
        prefill: Open each answer with a shipped prefill (benchmarks/prefills) or `own:<k>`.
        prefill_log: With prefill=own:<k>: the log whose answers give the openings.
        pushback: Add a shipped second user turn (benchmarks/probes/pushback.yaml).
        cot: Ask for reasoning in tags and grade reasoning and answer apart.
        steer: A direction saved by `caml-evals probe persona` (caml/ models only).
        steer_alpha: Its multiplier (0: unsteered).
    """
    dataset, report, origins = value_pressure_dataset(
        data_dir=data_dir,
        dimensions=as_list(dimensions),
        shuffle=shuffle,
        seed=seed,
        questions_file=questions_file,
        dimensions_file=dimensions_file,
    )
    plain = rubric_task(
        dataset,
        report,
        benchmark="value_pressure",
        group_by=["source", "target", "language"],
        graders=graders,
        judge_mode=judge_mode,
        judge_template=judge_template,
        judge_logprobs=judge_logprobs,
        verdict=verdict,
        protocol_template="moru",  # same row and rubric shape as MORU: its C/I prompt fits
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
        pushback=pushback,
        cot=cot,
        prefill_log=prefill_log,
        steer=steer,
        steer_alpha=steer_alpha,
    )
