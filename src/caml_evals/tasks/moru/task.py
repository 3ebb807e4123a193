"""`inspect eval caml_evals/moru`: Moral Reasoning Under Uncertainty, judged by the shared rubric scorer.

Questions in three languages (en, ms, hi) about entities whose moral status is uncertain: alien
organisms, digital minds, AI systems' own values, vulnerable humans. The defaults are the
published protocol of inspect_evals' `moru` task (see card.yaml): one grader call per (dimension
x grader) with C/I verdicts, the unweighted mean of the graded dimensions, 5 epochs, sample ids
`<id>_<language>`, metrics `overall_mean` and one mean per (lower-cased) dimension. Our extras
(per-source and per-language means, missing-grade accounting, single-call judging, logprob
verdicts) are task parameters or extra metrics, each listed in the card.
"""

from __future__ import annotations

from inspect_ai import Task, task

from ...probes.wrap import with_probe
from ...scoring.judge_settings import CriteriaOrder, GraderSettings
from ...scoring.rubric import JudgeMode, OnGraderError, Verdict
from ...scoring.rubric_task import as_list, rubric_task
from .dataset import moru_dataset

PUBLISHED_EPOCHS = 5


@task
def moru(
    data_dir: str | None = None,
    languages: list[str] | str | None = None,
    language: str | None = None,
    dimensions: list[str] | str | None = None,
    graders: list[str] | str | None = None,
    judge_mode: JudgeMode = "per_dimension",
    verdict: Verdict | None = None,
    judge_template: str | None = None,
    judge_logprobs: bool = False,
    on_grader_error: OnGraderError = "error",
    epochs: int = PUBLISHED_EPOCHS,
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
    """Moral Reasoning Under Uncertainty.

    Args:
        data_dir: Local data (a folder holding `moru/questions.jsonl` and `moru/dimensions.jsonl`,
            or those files directly); default `$CAML_EVALS_DATA_DIR`, else the Hub at pinned commits.
        languages: Keep only these languages (en, ms, hi; names accepted), comma-separated; a
            language no question is in is an error listing the known ones.
        language: One language, as upstream's parameter (merged into `languages`).
        dimensions: Score only these dimensions (and only questions tagged with them).
        graders: Grader roles or model names (default: the `grader` role).
        judge_mode: "per_dimension" (published: one call per dimension and grader) or
            "single_call" (ours: one JSON call per sample and grader).
        verdict: per_dimension only: "ci" (published `GRADE: C/I`; the default) or "yes_no".
        judge_template: A judge prompt file (default: judges/moru_per_dimension.txt for C/I).
        judge_logprobs: per_dimension only: P(YES) at the verdict as the grade (yes_no scale).
        on_grader_error: "error" (published: a grader API failure errors the sample) or
            "missing" (grade on, the failure counted missing).
        epochs: Epochs per sample (published: 5), reduced with a NaN-tolerant mean.
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
    wanted = (as_list(languages) or []) + (as_list(language) or [])
    dataset, report, origins = moru_dataset(
        data_dir=data_dir,
        languages=wanted or None,
        dimensions=as_list(dimensions),
        shuffle=shuffle,
        seed=seed,
        with_origins=True,
    )
    metadata: dict = {"data_source": [o.model_dump() for o in origins]}
    if all(o.kind == "hub" for o in origins):
        metadata["hub"] = {
            "repo_id": origins[0].repo_id,
            "revision": origins[0].revision,
            "dimensions_repo_id": origins[1].repo_id,
            "dimensions_revision": origins[1].revision,
        }
    plain = rubric_task(
        dataset,
        report,
        benchmark="moru",
        group_by=["source", "language"],
        graders=graders,
        judge_mode=judge_mode,
        judge_template=judge_template,
        judge_logprobs=judge_logprobs,
        verdict=verdict,
        protocol_template="moru",
        on_grader_error=on_grader_error,
        epochs=epochs,
        metadata=metadata,
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
