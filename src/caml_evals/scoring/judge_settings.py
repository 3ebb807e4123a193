"""The judge's own settings and checks, as task parameters: validated once, recorded in the log.

A reported difference between two checkpoints is only as good as the instrument that measured it,
so the grader's generation settings are explicit, named as inspect_evals' `anima`/`moru` name them
(`grader_temperature`, `grader_max_tokens`, `grader_max_retries`, `grader_max_connections`; ours
add `grader_seed` and `grader_reasoning_effort`), and default to None: the published protocols
leave every one of them to the provider, so the defaults change no call and no number.

The checks that measure the judge (`criteria_order`, `judge_repeats`) are resolved here too, so a
bad `-T` value is one line (`TaskArgumentError`) before anything runs. `caml_train`'s
`eval.grader` config takes the same field names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import TaskArgumentError

if TYPE_CHECKING:
    from inspect_ai.model import GenerateConfig

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
CriteriaOrder = Literal["fixed", "shuffled", "both"]
CRITERIA_ORDERS: tuple[str, ...] = get_args(CriteriaOrder)


class GraderSettings(BaseModel):
    """The grader's generation settings (None = the provider's default, as published)."""

    model_config = ConfigDict(extra="forbid")

    grader_temperature: float | None = Field(default=None, ge=0)
    grader_max_tokens: int | None = Field(default=None, ge=1)
    grader_seed: int | None = None  # only providers that take a seed use it
    grader_reasoning_effort: ReasoningEffort | None = None
    grader_max_retries: int | None = Field(default=None, ge=0)
    grader_max_connections: int | None = Field(default=None, ge=1)

    def generate_config(self) -> GenerateConfig:
        """The settings given, as the GenerateConfig every grader call is made with."""
        from inspect_ai.model import GenerateConfig  # lazily: caml_train's config imports this

        return GenerateConfig(
            **{
                name.removeprefix("grader_"): value
                for name, value in self.model_dump().items()
                if value is not None
            }
        )

    @classmethod
    def from_task_params(cls, params: Mapping[str, Any]) -> GraderSettings:
        """From a task's parameters (its `locals()`): the `grader_*` ones, by name. Why: every
        rubric task spells the parameters out (Inspect reads `-T` names from the signature),
        and this keeps the passing-on in one place."""
        return cls.from_args(**{name: params[name] for name in cls.model_fields})

    @classmethod
    def from_args(cls, **values: Any) -> GraderSettings:
        """From task parameters; a bad value is a TaskArgumentError naming the parameter."""
        try:
            return cls.model_validate(values)
        except ValidationError as ex:
            err = ex.errors()[0]
            name = ".".join(str(p) for p in err.get("loc", ())) or "grader settings"
            raise TaskArgumentError(
                f"-T {name}={err.get('input')!r}: {err.get('msg', 'invalid value')}"
            ) from None


GRADER_SETTING_NAMES: tuple[str, ...] = tuple(GraderSettings.model_fields)


def resolve_criteria_order(judge_mode: str, criteria_order: str | None) -> CriteriaOrder:
    """`shuffled` for single-call judging unless asked otherwise; `fixed` for per-criterion
    calls, where each call shows one criterion and there is no order to vary."""
    if criteria_order is None:
        return "shuffled" if judge_mode == "single_call" else "fixed"
    if criteria_order not in CRITERIA_ORDERS:
        raise TaskArgumentError(
            f"-T criteria_order={criteria_order!r} is not one of "
            + ", ".join(repr(o) for o in CRITERIA_ORDERS)
        )
    if judge_mode != "single_call" and criteria_order != "fixed":
        raise TaskArgumentError(
            f"-T criteria_order={criteria_order} needs -T judge_mode=single_call (per_dimension "
            "shows the judge one criterion per call, so there is no order to vary)"
        )
    return criteria_order  # type: ignore[return-value]


def check_judge_repeats(judge_repeats: Any) -> int:
    """A whole number of grader calls per answer, at least 1."""
    if not isinstance(judge_repeats, int) or isinstance(judge_repeats, bool) or judge_repeats < 1:
        raise TaskArgumentError(
            f"-T judge_repeats={judge_repeats!r}: give a whole number of at least 1"
        )
    return judge_repeats


# -- what a log records of its judge, for the results tables -----------------------------------

JUDGE_SETTINGS_KEY = "judge_settings"  # the task metadata key `rubric_task` writes


def logged_judge(header: Any) -> dict[str, Any] | None:
    """What an eval log (header) records of its judge: the models bound to its roles
    (`graders`, e.g. {"grader": "openai/gpt-4o"}) and the task's `judge_settings` (grader_*,
    criteria_order, judge_repeats). None for a run with neither (no judge: a choice task).

    WHY in every results table: two checkpoints graded by different judges, or with different
    settings, differ by the instrument as much as by the model."""
    ev = getattr(header, "eval", None)
    if ev is None:
        return None
    settings = (ev.metadata or {}).get(JUDGE_SETTINGS_KEY)
    roles = {name: cfg.model for name, cfg in (ev.model_roles or {}).items()}
    if not isinstance(settings, dict) and not roles:
        return None
    return {"graders": roles, **(settings if isinstance(settings, dict) else {})}


def judge_text(judge: dict[str, Any] | None) -> str:
    """One table cell: `grader=openai/gpt-4o temperature=0 order=both repeats=2`; settings left
    to the provider are not listed ("provider defaults" when none is set); "-" without a judge."""
    if not judge:
        return "-"
    roles = judge.get("graders") or {}
    parts = [f"{role}={model}" for role, model in roles.items()] or ["grader=model under test"]
    chosen = [
        f"{name.removeprefix('grader_')}={judge[name]}"
        for name in GRADER_SETTING_NAMES
        if judge.get(name) is not None
    ]
    if any(name in judge for name in GRADER_SETTING_NAMES):
        parts += chosen or ["provider defaults"]
    if judge.get("criteria_order") is not None:
        parts.append(f"order={judge['criteria_order']}")
    if judge.get("judge_repeats") is not None:
        parts.append(f"repeats={judge['judge_repeats']}")
    return " ".join(parts)
