"""The one Task shape of every rubric-judged benchmark (AHB, MORU, human compassion).

A benchmark contributes its dataset (samples carrying `RubricSampleMetadata`), its load report
and which metadata fields to break the score down by; the solver, the shared rubric scorer, the
metrics and the NaN-tolerant epoch reducer are the same for all of them, built here once.

Judging options are checked here, before anything runs, so a bad `-T` value is one clear line
(`TaskArgumentError`) rather than a traceback from deep inside the scorer.
"""

from __future__ import annotations

from typing import Any, get_args

from inspect_ai import Epochs, Task
from inspect_ai.dataset import Dataset
from inspect_ai.solver import generate

from ..dataset_report import DatasetReport
from ..errors import TaskArgumentError
from .judge_settings import (
    CriteriaOrder,
    GraderSettings,
    check_judge_repeats,
    resolve_criteria_order,
)
from .metrics import rubric_metrics
from .reducers import nan_mean_reducer
from .rubric import JudgeMode, OnGraderError, Verdict, rubric_scorer


def as_list(value: list[str] | str | None) -> list[str] | None:
    """`-T languages=en,ms` and `languages=["en", "ms"]` mean the same; empty means None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    items = [v.strip() for v in value if v and v.strip()]
    return items or None


def check_choice(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    """A task parameter that takes one of a few values: anything else is a TaskArgumentError."""
    if value not in allowed:
        raise TaskArgumentError(
            f"-T {name}={value!r} is not one of {', '.join(repr(a) for a in allowed)}"
        )


def resolve_verdict(
    judge_mode: JudgeMode,
    verdict: Verdict | None,
    judge_logprobs: bool,
    judge_template: str | None = None,
) -> Verdict:
    """The verdict scale when the user gave none: the published C/I letters for per-criterion
    text verdicts with the protocol's template; YES/NO when logprob grading reads P(YES), with
    a user's own template (ours ask for YES/NO) and for single-call JSON."""
    check_choice("judge_mode", judge_mode, get_args(JudgeMode))
    if verdict is not None:
        check_choice("verdict", verdict, get_args(Verdict))
        if judge_logprobs and verdict != "yes_no":
            raise TaskArgumentError("-T judge_logprobs=true reads P(YES): use -T verdict=yes_no")
        return verdict
    if judge_mode == "per_dimension" and not judge_logprobs and judge_template is None:
        return "ci"
    return "yes_no"


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
    verdict: Verdict | None = None,
    protocol_template: str | None = None,
    template_values: dict[str, str] | None = None,
    on_grader_error: OnGraderError = "error",
    epochs: int = 1,
    metadata: dict[str, Any] | None = None,
    version: str = "1.0.0",
    grader_settings: GraderSettings | None = None,
    criteria_order: CriteriaOrder | None = None,
    judge_repeats: int = 1,
) -> Task:
    """Build the task. `protocol_template` is the judge template of the benchmark's published
    protocol (used for C/I per-criterion judging when no `judge_template` is given).

    The judge's settings (`grader_settings`, None = the provider's defaults, as published) and
    checks (`criteria_order`, `judge_repeats`) are recorded in the task metadata under
    `judge_settings`, beside `judging`."""
    resolved_verdict = resolve_verdict(judge_mode, verdict, judge_logprobs, judge_template)
    check_choice("on_grader_error", on_grader_error, get_args(OnGraderError))
    if judge_logprobs and judge_mode != "per_dimension":
        raise TaskArgumentError("-T judge_logprobs=true needs -T judge_mode=per_dimension")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise TaskArgumentError(f"-T epochs={epochs!r}: give a whole number of at least 1")
    order = resolve_criteria_order(judge_mode, criteria_order)
    repeats = check_judge_repeats(judge_repeats)
    settings = grader_settings or GraderSettings()
    template = judge_template
    if template is None and judge_mode == "per_dimension" and resolved_verdict == "ci":
        template = protocol_template
    return Task(
        dataset=dataset,
        solver=generate(),
        scorer=rubric_scorer(
            graders=as_list(graders),
            mode=judge_mode,
            template=template,
            logprobs=judge_logprobs,
            verdict=resolved_verdict,
            on_grader_error=on_grader_error,
            template_values=template_values,
            grader_config=settings.generate_config(),
            criteria_order=order,
            judge_repeats=repeats,
        ),
        metrics=rubric_metrics(
            group_by=group_by, order_effects=order == "both", judge_repeats=repeats
        ),
        epochs=Epochs(epochs, nan_mean_reducer()),
        metadata={
            "benchmark": benchmark,
            **(metadata or {}),
            "judging": {
                "mode": judge_mode,
                "verdict": resolved_verdict if judge_mode == "per_dimension" else "json",
                "template": template or judge_mode,
                "logprobs": judge_logprobs,
                "on_grader_error": on_grader_error,
                "epochs": epochs,
            },
            "judge_settings": {
                **settings.model_dump(),
                "criteria_order": order,
                "judge_repeats": repeats,
            },
            "dataset_report": report.model_dump(),
            "dataset_problems": report.counts(),
        },
        version=version,
    )
