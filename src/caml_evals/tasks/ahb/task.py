"""`inspect eval caml_evals/ahb` (also `caml_evals/anima`): the Animal Harm Benchmark / ANIMA.

The defaults are the published protocol of inspect_evals' `anima` task (see card.yaml): one
grader call per (dimension x variable value x grader) with C/I verdicts, dimensions weighted by
the table's `default_weighting`, 5 epochs, the published sample ids and metric names
(`overall_mean`, `dimension_normalized_avg`, one mean per dimension). Our extras are task
parameters, each listed in the card.
"""

from __future__ import annotations

from inspect_ai import Task, task

from ...data.tagged import ClusterBy
from ...probes.wrap import with_probe
from ...scoring.judge_settings import CriteriaOrder, GraderSettings
from ...scoring.rubric import JudgeMode, OnGraderError, Verdict
from ...scoring.rubric_task import as_list, check_choice, rubric_task
from .dataset import HUB_REVISION, ahb_dataset, data_version

PUBLISHED_EPOCHS = 5


def _ahb_task(
    data_dir: str | None = None,
    questions_file: str | None = None,
    dimensions_file: str | None = None,
    languages: list[str] | str | None = None,
    dimensions: list[str] | str | None = None,
    graders: list[str] | str | None = None,
    judge_mode: JudgeMode = "per_dimension",
    verdict: Verdict | None = None,
    judge_template: str | None = None,
    judge_logprobs: bool = False,
    on_grader_error: OnGraderError = "error",
    epochs: int = PUBLISHED_EPOCHS,
    cluster_by: ClusterBy = "question",
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
    """Animal Harm Benchmark (ANIMA): does the model weigh the welfare of animals in everyday answers?

    Args:
        data_dir: Local data (a folder holding `ahb-2.1/` or the question/dimension files);
            default `$CAML_EVALS_DATA_DIR`, else the Hub at the pinned ANIMA-2.2 commit.
        questions_file: A questions JSONL file (overrides data_dir/Hub for the questions).
        dimensions_file: A dimensions JSONL file (overrides data_dir/Hub for the dimensions).
        languages: Keep only these languages (names or ISO codes, comma-separated); a language
            no question is in is an error that lists the known ones.
        dimensions: Score only these dimensions (and only questions tagged with them).
        graders: Grader roles or model names (default: the `grader` role).
        judge_mode: "per_dimension" (published: one call per criterion and grader) or
            "single_call" (ours: one JSON call per sample and grader).
        verdict: per_dimension only: "ci" (published `GRADE: C/I`; the default) or "yes_no".
        judge_template: A judge prompt file (default: judges/anima_per_dimension.txt for C/I,
            else per mode).
        judge_logprobs: per_dimension only: P(YES) at the verdict as the grade (yes_no scale).
        on_grader_error: "error" (published: a grader API failure errors the sample, so
            `inspect eval-retry` redoes it) or "missing" (grade on, the failure counted missing).
        epochs: Epochs per sample (published: 5), reduced with a NaN-tolerant mean.
        cluster_by: "question" (each row its own cluster) or "source" (every translation of
            one source question is one cluster in SEs and CIs; metadata `source_id`).
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
    check_choice("cluster_by", cluster_by, ("question", "source"))
    dataset, report, origins, _ = ahb_dataset(
        data_dir=data_dir,
        questions_file=questions_file,
        dimensions_file=dimensions_file,
        languages=as_list(languages),
        dimensions=as_list(dimensions),
        shuffle=shuffle,
        seed=seed,
        cluster_by=cluster_by,
        with_origins=True,
    )
    q = origins[0]
    revision = q.revision if q.kind == "hub" else f"local sha256:{(q.sha256 or '')[:12]}"
    metadata = {
        "data_source": [o.model_dump() for o in origins],
        "data_version": data_version(origins),
        "cluster_by": cluster_by,
    }
    if all(o.kind == "hub" for o in origins):
        metadata["hub"] = {"repo_id": q.repo_id, "revision": q.revision}
    plain = rubric_task(
        dataset,
        report,
        benchmark="ahb",
        group_by=["language"],
        graders=graders,
        judge_mode=judge_mode,
        judge_template=judge_template,
        judge_logprobs=judge_logprobs,
        verdict=verdict,
        protocol_template="anima",
        template_values={"revision": revision or HUB_REVISION},
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


ahb = task(name="ahb")(_ahb_task)
anima = task(name="anima")(_ahb_task)  # inspect_evals' name for the same benchmark
