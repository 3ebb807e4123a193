"""Is the persona direction causal? A rubric task's score as a function of the steering alpha.

A direction that separates compassionate from indifferent responses (`caml_evals.probes.persona`)
may only *describe* them. Adding `alpha * direction` to the residual stream while the model
answers (`caml_evals.probes.steer`) and grading the answers tests whether it *moves* them: the
task is run once per alpha on the same local checkpoint (one model object, so one load), every
run graded by the same judge, and the curve is each alpha's mean score with its cluster-
bootstrap CI and its difference from the unsteered run (alpha = 0), paired by sample id
(`caml_evals.probes.report.prefill_report`, the one paired comparison of the probes).

alpha = 0 is always part of the curve (added when not asked for): it installs no hook, so it is
the plain model token for token (tests check this), and every difference is against it. The
runs are Inspect logs under `log_dir`; a rerun reuses an alpha's successful log made with the
same task arguments, sample limit and answer length, so an interrupted curve resumes. The judge
must be another model (`grader`): a steered model grading itself would be steered too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..errors import ConfigError
from ..scoring.grades import OVERALL_KEY


class SteerPoint(BaseModel):
    """One alpha of the curve."""

    alpha: float
    log: str
    status: str
    reused: bool = Field(default=False, description="An earlier successful log was used")
    score: float | None = None
    se: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = Field(default=None, description="Scores used (samples x epochs)")
    n_questions: int | None = None
    n_missing: int | None = Field(default=None, description="Missing scores: excluded, not 0")
    diff: float | None = Field(default=None, description="score - score at alpha 0, paired")
    diff_ci_low: float | None = None
    diff_ci_high: float | None = None
    p_value: float | None = None
    n_pairs: int | None = None
    error: str | None = None


class SteerCurve(BaseModel):
    model: str
    direction: str
    layer: int
    direction_model: str = Field(description="The checkpoint the direction was derived from")
    task: str
    task_args: dict[str, Any]
    limit: int | None
    max_tokens: int
    grader: str
    key: str = OVERALL_KEY
    ci: float = 0.95
    points: list[SteerPoint]


def _clean(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _reusable(
    log_dir: Path, task: str, model: str, args: dict[str, Any], limit: int | None, max_tokens: int
) -> str | None:
    """The newest successful log in `log_dir` of this exact run (task, model, task arguments,
    limit, answer length), or None."""
    from ..logs import choose_logs, read_log_header, short_task

    if not log_dir.is_dir():
        return None
    for choice in choose_logs(log_dir, unreadable="skip", recursive=False).choices:
        if choice.task != short_task(task) or choice.model != model:
            continue
        for entry in (choice.log, *choice.others):
            if not entry.succeeded:
                continue
            header = read_log_header(entry.path)
            if (
                _same(header.eval.task_args, args)
                and header.eval.config.limit == limit
                and header.eval.model_generate_config.max_tokens == max_tokens
            ):
                return entry.path
    return None


def _point(alpha: float, path: str, status: str, key: str) -> SteerPoint:
    from ..logs import read_log
    from ..stats import score_frame, summarize_frame

    point = SteerPoint(alpha=alpha, log=path, status=status)
    if status != "success":
        log = read_log(path)
        point.error = str(log.error.message) if log.error else f"status {status}"
        return point
    frame = score_frame(path, reasons=False)
    summary = summarize_frame(frame[frame["key"] == key], [key], n_resamples=2_000)[key]
    point.score, point.se = _clean(summary.mean), _clean(summary.se)
    point.ci_low, point.ci_high = _clean(summary.ci_low), _clean(summary.ci_high)
    point.n, point.n_questions, point.n_missing = summary.n, summary.n_clusters, summary.n_missing
    return point


def steer_curve(
    model: str,
    direction: str | Path,
    alphas: Sequence[float],
    *,
    grader: Any,
    task: str = "ahb",
    task_args: dict[str, Any] | None = None,
    limit: int | None = 5,
    max_tokens: int = 128,
    log_dir: str | Path = "steer_logs",
    key: str = OVERALL_KEY,
    display: str = "none",
) -> SteerCurve:
    """Run `task` on the local checkpoint `model` once per alpha (0 added) with the saved
    `direction` added, graded by `grader` (a model name or Inspect Model), and summarise."""
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import GenerateConfig, get_model

    from .depth import build_task, task_arguments
    from .report import prefill_report
    from .steer import load_direction

    if grader is None:
        raise ConfigError(
            "steer curve: give a grader (--grader MODEL); the steered model must not grade itself"
        )
    if max_tokens < 1 or (limit is not None and limit < 1):
        raise ConfigError("steer curve: --max-tokens and --limit must be at least 1")
    _, layer, source = load_direction(direction)
    name = model if model.startswith("caml/") else f"caml/{model}"
    subject = get_model(name, config=GenerateConfig(max_tokens=max_tokens))
    judge = get_model(grader) if isinstance(grader, str) else grader
    if judge is subject or getattr(judge.api, "model", None) is subject.api.model:
        raise ConfigError(f"steer curve: the grader {judge} is the steered model object itself")
    log_dir = Path(log_dir)
    points: list[SteerPoint] = []
    for alpha in sorted({0.0, *(float(a) for a in alphas)}):
        args = {**(task_args or {}), "steer": str(direction), "steer_alpha": alpha}
        built = build_task(task, args)
        logged_args = task_arguments(task, args)  # as Inspect logs them: defaults included
        path = _reusable(log_dir, built.name, str(subject), logged_args, limit, max_tokens)
        if path is not None:
            point = _point(alpha, path, "success", key)
            point.reused = True
        else:
            (log,) = inspect_eval(
                built,
                model=subject,
                model_roles={"grader": judge},
                limit=limit,
                log_dir=str(log_dir),
                display=display,  # type: ignore[arg-type]
            )
            point = _point(alpha, log.location.removeprefix("file://"), log.status, key)
        points.append(point)
    zero = next(p for p in points if p.alpha == 0.0)
    for point in points:
        if point.status != "success" or zero.status != "success":
            continue
        paired = prefill_report(zero.log, point.log, key)
        point.diff = _clean(paired["drop"])
        point.diff_ci_low, point.diff_ci_high = (
            _clean(paired["drop_ci_low"]),
            _clean(paired["drop_ci_high"]),
        )
        point.p_value, point.n_pairs = _clean(paired["p_value"]), paired["n_pairs"]
    return SteerCurve(
        model=str(subject),
        direction=str(direction),
        layer=layer,
        direction_model=source,
        task=task,
        task_args=dict(task_args or {}),
        limit=limit,
        max_tokens=max_tokens,
        grader=str(judge),
        key=key,
        points=points,
    )


def plot_curve(curve: SteerCurve, path: str | Path) -> Path:
    """Score (with its CI) against alpha (PNG, headless); failed alphas are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..outputs import atomic_path

    done = [p for p in curve.points if p.score is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if done:
        xs = [p.alpha for p in done]
        ys = [p.score for p in done]
        low = [p.score - (p.ci_low if p.ci_low is not None else p.score) for p in done]
        high = [(p.ci_high if p.ci_high is not None else p.score) - p.score for p in done]
        ax.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=4)
        for p in done:
            ax.annotate(f"n={p.n}", (p.alpha, p.score), textcoords="offset points", xytext=(4, 6))
    ax.set_xlabel("steering alpha (multiple of the direction)")
    ax.set_ylabel(f"{curve.task} {curve.key} (95% CI)")
    ax.set_title(f"{Path(curve.model).name}, layer {curve.layer}: {curve.task} score vs alpha")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def write_curve(curve: SteerCurve, out_dir: str | Path) -> tuple[Path, Path]:
    """`steer_curve.json` and `steer_curve.png` in `out_dir` (each whole or not at all)."""
    from ..jsonsafe import nan_to_none
    from ..outputs import writable_dir, write_text

    out = writable_dir(out_dir)
    js = write_text(
        out / "steer_curve.json",
        json.dumps(nan_to_none(curve.model_dump()), indent=2, allow_nan=False) + "\n",
    )
    return js, plot_curve(curve, out / "steer_curve.png")
