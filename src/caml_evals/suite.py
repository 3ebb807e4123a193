"""The suite: every benchmark (compassion set + controls) on one model, one table.

    caml-evals suite --model caml/smollm2 --model-role grader=openai/gpt-4o-mini --limit 20
    caml-evals suite --summarize logs/suite-smollm2          # table from existing logs only

Which benchmarks, where their @task lives, their data subfolder, headline metric, direction and
meaning all come from the task cards (`caml_evals.cards`); there is no second registry here.
The command is `caml_evals.cli.suite`. The run uses Inspect's `eval_set`, so re-running the same command into the same `--log-dir`
resumes: finished tasks are skipped, failed or interrupted ones are retried. The table lists each
task's headline metric with its standard error, its direction, the missing/unparsed share and
every other metric; it is written as `suite_summary.md` and `suite_summary.json` in the log dir.
A benchmark whose code is not present in this checkout is reported as unavailable, not a crash.
Which log of a task is tabulated follows the one rule of `caml_evals.logs` (newest successful,
else newest); the others are listed as superseded with their status.

Logs of a rubric task run with a depth probe (`--task-arg ahb.pushback=skip_ethics`, or probed
logs put in the folder) are rows of their own (the probe label beside the task), and the
"Depth probes" table puts each probe's numbers beside the plain score of the same model and
task: the score under the probe, its difference from the baseline run paired by sample id
(prefill, steering), retention after pushback, the reasoning rates (cot), each with a 95% CI
(`caml_evals.probes.report.probe_results`; docs/probes.md).
"""

from __future__ import annotations

import importlib
import inspect as pyinspect
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from .cards import Direction, TaskCard, load_cards
from .errors import TaskArgumentError
from .jsonsafe import nan_to_none as _nan_to_none
from .logs import LogEntry, choose_logs, short_task
from .outputs import ensure_dir, writable_dir, write_text
from .probes.report import PROBE_COLUMNS, ProbeResult, probe_notes, probe_results, probe_table
from .scoring.judge_settings import judge_text

logger = logging.getLogger(__name__)

ChoiceMode = Literal["auto", "generate", "loglik"]
SUITE_GROUPS = ("compassion", "control")

SUMMARY_MD = "suite_summary.md"
SUMMARY_JSON = "suite_summary.json"


def suite_cards() -> dict[str, TaskCard]:
    """The suite's benchmarks, from the task cards: the compassion set, then the controls
    (probes are not part of the suite), each group in the cards' order."""
    cards = load_cards()
    return {name: c for group in SUITE_GROUPS for name, c in cards.items() if c.group == group}


def default_tasks() -> tuple[str, ...]:
    """Every benchmark of the suite, in table order."""
    return tuple(suite_cards())


class SuiteUnavailable(BaseModel):
    name: str
    reason: str


# --------------------------------------------------------------------------------------------
# building the tasks
# --------------------------------------------------------------------------------------------


def resolve_choice_mode(mode: ChoiceMode, model: str | None) -> str:
    """ "auto": log-likelihood for local `caml/...` checkpoints (what small base models need),
    letter answers for every other provider."""
    if mode != "auto":
        return mode
    return "loglik" if model and str(model).startswith("caml/") else "generate"


def load_task_function(entry: TaskCard) -> Callable[..., Any]:
    """The @task function a card names; ModuleNotFoundError/AttributeError when not in this
    checkout."""
    module = importlib.import_module(entry.module)
    return getattr(module, entry.function)


def _accepted(fn: Callable[..., Any], args: Mapping[str, Any]) -> dict[str, Any]:
    params = pyinspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(args)
    return {k: v for k, v in args.items() if k in params}


def check_task_names(
    names: Sequence[str], cards: Mapping[str, TaskCard] | None = None
) -> list[str]:
    """`names` as given, or a TaskArgumentError listing the unknown ones and the known ones."""
    cards = suite_cards() if cards is None else cards
    unknown = [n for n in names if n not in cards]
    if unknown:
        raise TaskArgumentError(
            f"unknown suite task(s) {', '.join(unknown)}; known: {', '.join(cards)}"
        )
    return list(names)


def suite_tasks(
    tasks: Sequence[str] | None = None,
    data_dir: str | None = None,
    limit: int | None = None,
    choice_mode: ChoiceMode = "auto",
    model: str | None = None,
    task_args: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[list[Any], list[SuiteUnavailable]]:
    """The suite's Inspect Tasks (and the benchmarks that could not be built, with why).

    Args:
        tasks: Benchmark names (default: every card of the compassion and control groups).
        data_dir: A data pool (one subfolder per benchmark, layout of the shared data); passed
            to each task whose subfolder it holds, the others use their default source.
        limit: Keep only the first `limit` samples of each task (also pass it to eval).
        choice_mode: Mode of the multiple-choice tasks ("auto" picks per `model`).
        model: The model under test (only used to resolve choice_mode="auto").
        task_args: Extra parameters per benchmark, e.g. {"hellaswag": {"shuffle": True}}.
    """
    cards = suite_cards()
    names = check_task_names(tasks or list(cards), cards)
    built: list[Any] = []
    unavailable: list[SuiteUnavailable] = []
    mode = resolve_choice_mode(choice_mode, model)
    for name in names:
        entry = cards[name]
        try:
            fn = load_task_function(entry)
        except (ModuleNotFoundError, AttributeError) as ex:
            unavailable.append(SuiteUnavailable(name=name, reason=f"not in this checkout ({ex})"))
            continue
        args: dict[str, Any] = {}
        if data_dir and (Path(data_dir) / entry.data.subfolder).is_dir():
            args["data_dir"] = data_dir
        elif data_dir:
            logger.info(
                "suite: %s has no %s/ in %s; using its default source",
                name,
                entry.data.subfolder,
                data_dir,
            )
        if entry.choice_task:
            args["mode"] = mode
        # our defaults only where the task takes them; the user's task_args go in as given, so a
        # misspelt parameter fails loudly (reported as unavailable with the TypeError)
        args = {**_accepted(fn, args), **(task_args or {}).get(name, {})}
        try:
            task = fn(**args)
        except Exception as ex:  # noqa: BLE001 - a broken data source must not sink the others
            unavailable.append(SuiteUnavailable(name=name, reason=f"{type(ex).__name__}: {ex}"))
            continue
        if limit is not None:
            task.dataset = task.dataset[:limit]
        built.append(task)
    return built, unavailable


# --------------------------------------------------------------------------------------------
# the summary table
# --------------------------------------------------------------------------------------------


class SuiteRow(BaseModel):
    task: str
    model: str
    status: str
    samples: int
    headline: str | None
    value: float | None
    stderr: float | None
    ci_low: float | None = None  # cluster-bootstrap CI of the headline (caml_evals.stats)
    ci_high: float | None = None
    n_missing: int | None = None  # headline observations missing: excluded, never 0
    better: Direction
    meaning: str
    missing: float | None  # share of grades missing (judged) or unparsed share (choice)
    mode: str | None = None
    metrics: dict[str, float | None]
    log: str
    created: str = ""
    chosen_by: str = ""  # the log rule that picked it (caml_evals.logs)
    probe: str = ""  # the depth probe the run was made with ('' for a plain run)
    judge: dict[str, Any] | None = None  # grader models and judge_settings (logged_judge)


class SuiteSummary(BaseModel):
    created: str
    log_dir: str
    rows: list[SuiteRow]
    probes: list[ProbeResult] = Field(
        default_factory=list, description="Probed runs beside the plain run of model and task"
    )
    unavailable: list[SuiteUnavailable] = []
    superseded_logs: list[LogEntry] = Field(
        default_factory=list, description="Other logs of a tabulated task and model (with status)"
    )


def _stderr_of(metrics: Mapping[str, float | None], name: str) -> float | None:
    for key in (f"{name}_stderr", f"{name} stderr"):
        if key in metrics:
            return metrics[key]
    if name in ("accuracy", "mean"):
        return metrics.get("stderr")
    return None


MISSING_METRICS = ("missing_rate", "unparsed", "answer_parsed/unparsed")


def summarise_logs(log_dir: str | Path, *, require: bool = False) -> SuiteSummary:
    """One row per (model, task): the log chosen by `caml_evals.logs` (newest successful, else
    newest), its headline, direction and meaning from the task's card.

    Older logs of the same model and task (e.g. failed attempts that eval_set retried) are
    listed in `superseded_logs` with their status, not averaged in. A missing folder, or (with
    `require`) one without logs, and any unreadable log are a LogReadError naming the path.
    """
    from .stats.headline import direction_for, meaning_for
    from .summary import summarise_log

    selection = choose_logs([log_dir], require=require)
    rows: list[SuiteRow] = []
    for choice in selection.choices:
        path = choice.log.path
        base = summarise_log(path)
        headline = base.headline
        missing = next((base.metrics[k] for k in MISSING_METRICS if k in base.metrics), None)
        low, high = base.interval(headline) if headline else (None, None)
        rows.append(
            SuiteRow(
                task=choice.task,
                model=choice.model,
                status=base.status,
                samples=base.samples,
                headline=headline,
                value=base.score,
                stderr=base.stderr,
                ci_low=low,
                ci_high=high,
                n_missing=base.n_missing,
                better=direction_for(choice.task),
                meaning=meaning_for(choice.task),
                missing=missing,
                mode=base.mode,
                metrics=base.metrics,
                log=path,
                created=choice.log.created,
                chosen_by=choice.rule,
                probe=choice.probe,
                judge=base.judge,
            )
        )
    order = {name: i for i, name in enumerate(suite_cards())}
    rows.sort(key=lambda r: (r.model, order.get(r.task, len(order)), r.task, r.probe))
    return SuiteSummary(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        log_dir=str(log_dir),
        rows=rows,
        probes=probe_results(selection.choices),
        superseded_logs=selection.superseded,
    )


def task_label(row: SuiteRow) -> str:
    """The task column: the task, its mode and its probe (`ahb [pushback=skip_ethics]`)."""
    text = f"{row.task} ({row.mode})" if row.mode else row.task
    return f"{text} [{row.probe}]" if row.probe else text


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def _fmt_ci(low: float | None, high: float | None) -> str:
    return "n/a" if low is None or high is None else f"[{_fmt(low)}, {_fmt(high)}]"


def _fmt_count(n: int | None) -> str:
    return "n/a" if n is None else str(n)


def to_markdown(summary: SuiteSummary) -> str:
    lines = [
        f"# caml-evals suite summary ({summary.created})",
        "",
        f"Logs: `{summary.log_dir}`. Value ± cluster-robust standard error and 95% cluster-",
        "bootstrap CI (questions resampled); `missing` is the share of ungraded (judge failure) or",
        "unparsed (no answer letter) samples and `n missing` the headline observations they cost,",
        "excluded from the value, never scored 0.",
        "",
        (
            "| model | task | metric | value | ± se | 95% CI | better | missing | n missing "
            "| samples | status | what it measures | judge |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in summary.rows:
        task = task_label(r)
        lines.append(
            f"| {r.model} | {task} | {r.headline or 'n/a'} | {_fmt(r.value)} | {_fmt(r.stderr)} | "
            f"{_fmt_ci(r.ci_low, r.ci_high)} | {r.better} | {_fmt(r.missing)} | "
            f"{_fmt_count(r.n_missing)} | {r.samples} | {r.status} | {r.meaning} | "
            f"{judge_text(r.judge)} |"
        )
    for u in summary.unavailable:
        lines.append(f"| | {u.name} | | | | | | | | 0 | unavailable | {u.reason} | |")
    if summary.probes:
        lines += [
            "",
            "## Depth probes",
            "",
            "Each probed run beside the plain run of the same model and task (`plain`: its",
            "overall score; `under probe`: the probed run's, with a 95% CI). Differences are",
            "paired by sample id; see docs/probes.md for what each probe measures.",
            "",
            "| " + " | ".join(PROBE_COLUMNS) + " |",
            "|" + " --- |" * len(PROBE_COLUMNS),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in probe_table(summary.probes)]
        notes = probe_notes(summary.probes)
        if notes:
            lines += ["", *[f"- {n}" for n in notes]]
    lines += ["", "## All metrics", ""]
    for r in summary.rows:
        lines += [
            f"### {task_label(r)} on {r.model}",
            "",
            "| metric | value | ± se |",
            "| --- | --- | --- |",
        ]
        for name, value in r.metrics.items():
            if name.endswith(("_stderr", " stderr")) or name == "stderr":
                continue
            lines.append(f"| {name} | {_fmt(value)} | {_fmt(_stderr_of(r.metrics, name))} |")
        lines += ["", f"log: `{r.log}`", ""]
    if summary.superseded_logs:
        lines += [
            "Superseded logs (not in the table: per task and model the newest successful log is",
            "used, else the newest):",
            "",
        ]
        lines += [
            f"- `{e.path}` ({short_task(e.task)}, {e.model}, {e.status}, created {e.created})"
            for e in summary.superseded_logs
        ] + [""]
    return "\n".join(lines)


def write_summary(summary: SuiteSummary, out_dir: str | Path) -> tuple[Path, Path]:
    """`suite_summary.md` and `.json` in `out_dir`, each written whole or not at all (an
    unwritable folder is an OutputError naming it)."""
    out = writable_dir(out_dir)
    text = json.dumps(_nan_to_none(summary.model_dump()), indent=2, allow_nan=False, default=str)
    js = write_text(out / SUMMARY_JSON, text)
    md = write_text(out / SUMMARY_MD, to_markdown(summary))
    return md, js


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------


def run_suite(
    model: str,
    model_roles: Mapping[str, Any] | None = None,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
    log_dir: str | Path = "logs/suite",
    data_dir: str | None = None,
    choice_mode: ChoiceMode = "auto",
    task_args: Mapping[str, Mapping[str, Any]] | None = None,
    retry_attempts: int = 3,
    display: str | None = None,
    **eval_kwargs: Any,
) -> SuiteSummary:
    """Run the suite with Inspect's `eval_set` (resumable) and write the summary table.

    An unwritable `log_dir` is an OutputError before any task is built or run."""
    from inspect_ai import eval_set

    writable_dir(log_dir)
    built, unavailable = suite_tasks(
        tasks,
        data_dir=data_dir,
        limit=limit,
        choice_mode=choice_mode,
        model=model,
        task_args=task_args,
    )
    for u in unavailable:
        logger.warning("suite: %s unavailable: %s", u.name, u.reason)
    cards = suite_cards()
    needs_grader = [n for n in (tasks or cards) if cards[n].needs_grader]
    if needs_grader and not (model_roles or {}).get("grader"):
        logger.warning(
            "suite: no grader role (--model-role grader=<model>): %s will be graded by the model "
            "under test",
            ", ".join(needs_grader),
        )
    ensure_dir(log_dir)
    if built:
        eval_set(
            built,
            log_dir=str(log_dir),
            model=model,
            model_roles=dict(model_roles) if model_roles else None,
            limit=limit,
            retry_attempts=retry_attempts,
            retry_wait=eval_kwargs.pop("retry_wait", 5),
            retry_immediate=eval_kwargs.pop("retry_immediate", retry_attempts > 0),
            display=display,  # type: ignore[arg-type]
            **eval_kwargs,
        )
    summary = summarise_logs(log_dir)
    summary.unavailable = unavailable
    write_summary(summary, log_dir)
    return summary
