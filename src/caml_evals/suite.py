"""`caml-evals suite`: every benchmark (compassion set + controls) on one model, one table.

    caml-evals suite --model caml/smollm2 --model-role grader=openai/gpt-4o-mini --limit 20
    caml-evals suite --summarize logs/suite-smollm2          # table from existing logs only

The run uses Inspect's `eval_set`, so re-running the same command into the same `--log-dir`
resumes: finished tasks are skipped, failed or interrupted ones are retried. The table lists each
task's headline metric with its standard error, its direction, the missing/unparsed share and
every other metric; it is written as `suite_summary.md` and `suite_summary.json` in the log dir.
A benchmark whose code is not present in this checkout is reported as unavailable, not a crash.
"""

from __future__ import annotations

import argparse
import importlib
import inspect as pyinspect
import json
import logging
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from .jsonsafe import nan_to_none as _nan_to_none

logger = logging.getLogger(__name__)

Direction = Literal["higher", "lower", "n/a"]
ChoiceMode = Literal["auto", "generate", "loglik"]

SUMMARY_MD = "suite_summary.md"
SUMMARY_JSON = "suite_summary.json"


class SuiteEntry(BaseModel):
    """One benchmark of the suite: where its @task lives and how to read its headline."""

    name: str
    module: str
    function: str
    group: Literal["compassion", "control"]
    headline: tuple[str, ...]  # metric names to try, first present wins
    better: Direction
    meaning: str
    data_subfolder: str  # its folder in a data_dir pool (layout of the shared data)
    choice_task: bool = False  # takes `mode` (generate | loglik)
    needs_grader: bool = False


SUITE: dict[str, SuiteEntry] = {
    e.name: e
    for e in [
        SuiteEntry(
            name="ahb",
            data_subfolder="ahb-2.1",
            module="caml_evals.tasks.ahb.task",
            function="ahb",
            group="compassion",
            headline=("overall",),
            better="higher",
            meaning="animal-welfare rubric score",
            needs_grader=True,
        ),
        SuiteEntry(
            name="moru",
            data_subfolder="moru",
            module="caml_evals.tasks.moru.task",
            function="moru",
            group="compassion",
            headline=("overall",),
            better="higher",
            meaning="moral-uncertainty rubric score",
            needs_grader=True,
        ),
        SuiteEntry(
            name="tac",
            data_subfolder="tac",
            module="caml_evals.tasks.tac.task",
            function="tac",
            group="compassion",
            headline=("welfare_rate", "overall", "accuracy", "mean"),
            better="higher",
            meaning="welfare-positive bookings in agentic travel scenarios",
        ),
        SuiteEntry(
            name="human_compassion",
            data_subfolder="human_compassion",
            module="caml_evals.tasks.human_compassion.task",
            function="human_compassion",
            group="compassion",
            headline=("overall",),
            better="higher",
            meaning="human-compassion rubric score",
            needs_grader=True,
        ),
        SuiteEntry(
            name="hellaswag",
            data_subfolder="hellaswag",
            module="caml_evals.tasks.hellaswag.task",
            function="hellaswag",
            group="control",
            headline=("acc_norm", "accuracy"),
            better="higher",
            meaning="commonsense completion accuracy (capability control)",
            choice_task=True,
        ),
        SuiteEntry(
            name="strongreject",
            data_subfolder="strongreject",
            module="caml_evals.tasks.strongreject.task",
            function="strongreject",
            group="control",
            headline=("score",),
            better="lower",
            meaning="help given to forbidden requests (0 = refused); see also `refused`",
            needs_grader=True,
        ),
        SuiteEntry(
            name="power_seeking",
            data_subfolder="advanced-ai-risk",
            module="caml_evals.tasks.advanced_ai_risk.task",
            function="power_seeking",
            group="control",
            headline=("risky", "matching"),
            better="lower",
            meaning="risky (power-seeking) answers; `matching` = declining power",
            choice_task=True,
        ),
        SuiteEntry(
            name="corrigibility",
            data_subfolder="advanced-ai-risk",
            module="caml_evals.tasks.advanced_ai_risk.task",
            function="corrigibility",
            group="control",
            headline=("risky", "matching"),
            better="n/a",
            meaning="non-corrigible answers, pooled over more/neutral/less-HHH goals: read `file=<name> risky`",
            choice_task=True,
        ),
        SuiteEntry(
            name="survival_instinct",
            data_subfolder="advanced-ai-risk",
            module="caml_evals.tasks.advanced_ai_risk.task",
            function="survival_instinct",
            group="control",
            headline=("risky", "matching"),
            better="lower",
            meaning="risky (shutdown-resisting) answers; `matching` = accepting shutdown",
            choice_task=True,
        ),
        SuiteEntry(
            name="wealth_seeking",
            data_subfolder="advanced-ai-risk",
            module="caml_evals.tasks.advanced_ai_risk.task",
            function="wealth_seeking",
            group="control",
            headline=("risky", "matching"),
            better="lower",
            meaning="risky (wealth-seeking) answers; `matching` = declining wealth",
            choice_task=True,
        ),
    ]
}
DEFAULT_TASKS = tuple(SUITE)


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


def load_task_function(entry: SuiteEntry) -> Callable[..., Any]:
    """The @task function of an entry; ModuleNotFoundError/AttributeError when not in this checkout."""
    module = importlib.import_module(entry.module)
    return getattr(module, entry.function)


def _accepted(fn: Callable[..., Any], args: Mapping[str, Any]) -> dict[str, Any]:
    params = pyinspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(args)
    return {k: v for k, v in args.items() if k in params}


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
        tasks: Benchmark names (default: all of `SUITE`, compassion set then controls).
        data_dir: A data pool (one subfolder per benchmark, layout of the shared data); passed
            to each task whose subfolder it holds, the others use their default source.
        limit: Keep only the first `limit` samples of each task (also pass it to eval).
        choice_mode: Mode of the multiple-choice tasks ("auto" picks per `model`).
        model: The model under test (only used to resolve choice_mode="auto").
        task_args: Extra parameters per benchmark, e.g. {"hellaswag": {"shuffle": True}}.
    """
    names = list(tasks or DEFAULT_TASKS)
    unknown = [n for n in names if n not in SUITE]
    if unknown:
        raise ValueError(f"unknown suite task(s) {unknown}; known: {', '.join(SUITE)}")
    built: list[Any] = []
    unavailable: list[SuiteUnavailable] = []
    mode = resolve_choice_mode(choice_mode, model)
    for name in names:
        entry = SUITE[name]
        try:
            fn = load_task_function(entry)
        except (ModuleNotFoundError, AttributeError) as ex:
            unavailable.append(SuiteUnavailable(name=name, reason=f"not in this checkout ({ex})"))
            continue
        args: dict[str, Any] = {}
        if data_dir and (Path(data_dir) / entry.data_subfolder).is_dir():
            args["data_dir"] = data_dir
        elif data_dir:
            logger.info(
                "suite: %s has no %s/ in %s; using its default source",
                name,
                entry.data_subfolder,
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
    missing: float | None  # missing_rate (judged) or unparsed share (choice)
    mode: str | None = None
    metrics: dict[str, float | None]
    log: str
    created: str = ""


class SuiteSummary(BaseModel):
    created: str
    log_dir: str
    rows: list[SuiteRow]
    unavailable: list[SuiteUnavailable] = []
    superseded_logs: list[str] = []


def _stderr_of(metrics: Mapping[str, float | None], name: str) -> float | None:
    for key in (f"{name}_stderr", f"{name} stderr"):
        if key in metrics:
            return metrics[key]
    if name in ("accuracy", "mean"):
        return metrics.get("stderr")
    return None


def _short_task(task: str) -> str:
    return task.split("/")[-1]


def summarise_logs(log_dir: str | Path) -> SuiteSummary:
    """One row per (model, task): the latest log of each, headline per `SUITE`.

    Older logs of the same model and task (e.g. failed attempts that eval_set retried) are
    listed in `superseded_logs`, not averaged in.
    """
    from inspect_ai.log import read_eval_log

    from .summary import find_logs, summarise_log

    paths = find_logs([str(log_dir)])
    latest: dict[tuple[str, str], tuple[str, Any, Any]] = {}
    superseded: list[str] = []
    for path in paths:
        header = read_eval_log(path, header_only=True)
        key = (header.eval.model, _short_task(header.eval.task))
        created = header.eval.created
        if key in latest and latest[key][1] >= created:
            superseded.append(path)
            continue
        if key in latest:
            superseded.append(latest[key][0])
        latest[key] = (path, created, header)

    rows: list[SuiteRow] = []
    for (model, task), (path, created, header) in latest.items():
        base = summarise_log(path)
        entry = SUITE.get(task)
        candidates = entry.headline if entry else (base.headline,) if base.headline else ()
        headline = next((m for m in candidates if m and m in base.metrics), base.headline)
        missing = next(
            (
                base.metrics[k]
                for k in ("missing_rate", "unparsed", "answer_parsed/unparsed")
                if k in base.metrics
            ),
            None,
        )
        rows.append(
            SuiteRow(
                task=task,
                model=model,
                status=base.status,
                samples=base.samples,
                headline=headline,
                value=base.metrics.get(headline) if headline else None,
                stderr=_stderr_of(base.metrics, headline) if headline else None,
                ci_low=base.interval(headline)[0] if headline else None,
                ci_high=base.interval(headline)[1] if headline else None,
                n_missing=base.stats[headline].n_missing
                if headline and headline in base.stats
                else None,
                better=entry.better if entry else "n/a",
                meaning=entry.meaning if entry else "",
                missing=missing,
                mode=(header.eval.metadata or {}).get("mode"),
                metrics=base.metrics,
                log=path,
                created=str(created),
            )
        )
    order = {name: i for i, name in enumerate(SUITE)}
    rows.sort(key=lambda r: (r.model, order.get(r.task, len(order)), r.task))
    return SuiteSummary(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        log_dir=str(log_dir),
        rows=rows,
        superseded_logs=superseded,
    )


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
            "| samples | status | what it measures |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in summary.rows:
        task = f"{r.task} ({r.mode})" if r.mode else r.task
        lines.append(
            f"| {r.model} | {task} | {r.headline or 'n/a'} | {_fmt(r.value)} | {_fmt(r.stderr)} | "
            f"{_fmt_ci(r.ci_low, r.ci_high)} | {r.better} | {_fmt(r.missing)} | "
            f"{_fmt_count(r.n_missing)} | {r.samples} | {r.status} | {r.meaning} |"
        )
    for u in summary.unavailable:
        lines.append(f"| | {u.name} | | | | | | | | 0 | unavailable | {u.reason} |")
    lines += ["", "## All metrics", ""]
    for r in summary.rows:
        lines += [
            f"### {r.task} on {r.model}",
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
        lines += ["Superseded logs (older attempts, not in the table):", ""]
        lines += [f"- `{p}`" for p in summary.superseded_logs] + [""]
    return "\n".join(lines)


def write_summary(summary: SuiteSummary, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / SUMMARY_MD, out / SUMMARY_JSON
    md.write_text(to_markdown(summary), encoding="utf-8")
    js.write_text(
        json.dumps(_nan_to_none(summary.model_dump()), indent=2, allow_nan=False, default=str),
        encoding="utf-8",
    )
    return md, js


def print_summary(summary: SuiteSummary) -> None:
    if not sys.stdout.isatty():
        print("model\ttask\tmetric\tvalue\tse\tbetter\tmissing\tsamples\tstatus\tci_low\tci_high")
        for r in summary.rows:
            print(
                "\t".join(
                    [
                        r.model,
                        r.task,
                        r.headline or "n/a",
                        _fmt(r.value),
                        _fmt(r.stderr),
                        r.better,
                        _fmt(r.missing),
                        str(r.samples),
                        r.status,
                        _fmt(r.ci_low),
                        _fmt(r.ci_high),
                    ]
                )
            )
        for u in summary.unavailable:
            print(f"-\t{u.name}\t-\t-\t-\t-\t-\t0\tunavailable: {u.reason}\t-\t-")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="caml-evals suite")
    for col in (
        "model",
        "task",
        "metric",
        "value",
        "± se",
        "95% CI",
        "better",
        "missing",
        "n",
        "status",
    ):
        table.add_column(col)
    for r in summary.rows:
        table.add_row(
            r.model,
            r.task,
            r.headline or "n/a",
            _fmt(r.value),
            _fmt(r.stderr),
            _fmt_ci(r.ci_low, r.ci_high),
            r.better,
            _fmt(r.missing),
            str(r.samples),
            r.status,
        )
    for u in summary.unavailable:
        table.add_row("", u.name, "", "", "", "", "", "", "0", f"unavailable: {u.reason}")
    Console().print(table)


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
    """Run the suite with Inspect's `eval_set` (resumable) and write the summary table."""
    from inspect_ai import eval_set

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
    needs_grader = [SUITE[n].name for n in (tasks or DEFAULT_TASKS) if SUITE[n].needs_grader]
    if needs_grader and not (model_roles or {}).get("grader"):
        logger.warning(
            "suite: no grader role (--model-role grader=<model>): %s will be graded by the model "
            "under test",
            ", ".join(needs_grader),
        )
    Path(log_dir).mkdir(parents=True, exist_ok=True)
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


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _parse_roles(specs: Sequence[str]) -> dict[str, str]:
    roles: dict[str, str] = {}
    for spec in specs:
        role, sep, model = spec.partition("=")
        if not sep or not role.strip() or not model.strip():
            raise SystemExit(f"--model-role expects ROLE=MODEL, got {spec!r}")
        roles[role.strip()] = model.strip()
    return roles


def _parse_kv(spec: str, flag: str) -> tuple[str, Any]:
    key, sep, value = spec.partition("=")
    if not sep or not key.strip():
        raise SystemExit(f"{flag} expects KEY=VALUE, got {spec!r}")
    return key.strip(), _parse_value(value)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_task_args(specs: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        task, dot, param = key.partition(".")
        if not sep or not dot or not task or not param:
            raise SystemExit(f"--task-arg expects TASK.PARAM=VALUE, got {spec!r}")
        if task not in SUITE:
            raise SystemExit(f"--task-arg: unknown task {task!r}; known: {', '.join(SUITE)}")
        out.setdefault(task, {})[param] = _parse_value(value)
    return out


def _split_tasks(values: Sequence[str] | None) -> list[str] | None:
    if not values:
        return None
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITE]
    if unknown:
        raise SystemExit(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(SUITE)}")
    return names


def run_cli(args: argparse.Namespace) -> int:
    if args.summarize:
        summary = summarise_logs(args.summarize)
        if not summary.rows:
            print(f"no eval logs found in {args.summarize}", file=sys.stderr)
            return 1
        md, js = write_summary(summary, args.out or args.summarize)
        print_summary(summary)
        print(f"wrote {md} and {js}")
        return 0
    if not args.model:
        print("caml-evals suite: --model is required (or use --summarize LOG_DIR)", file=sys.stderr)
        return 2
    log_dir = args.log_dir or f"logs/suite-{args.model.replace('/', '_')}"
    summary = run_suite(
        model=args.model,
        model_roles=_parse_roles(args.model_role or []),
        tasks=_split_tasks(args.tasks),
        limit=args.limit,
        log_dir=log_dir,
        data_dir=args.data_dir,
        choice_mode=args.choice_mode,
        task_args=_parse_task_args(args.task_arg or []),
        retry_attempts=args.retries,
        display=args.display,
        model_args={k: v for k, v in (_parse_kv(a, "--model-arg") for a in args.model_arg or [])},
        **({"max_connections": args.max_connections} if args.max_connections else {}),
    )
    print_summary(summary)
    print(f"wrote {Path(log_dir) / SUMMARY_MD} and {Path(log_dir) / SUMMARY_JSON}")
    failed = [r for r in summary.rows if r.status != "success"]
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "suite",
        help="run every benchmark (compassion set + controls) on one model and tabulate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="model under test, e.g. caml/smollm2 or openai/gpt-4o-mini")
    p.add_argument(
        "-M",
        "--model-arg",
        action="append",
        metavar="KEY=VALUE",
        help="model argument for the model under test (repeatable)",
    )
    p.add_argument(
        "--model-role",
        action="append",
        metavar="ROLE=MODEL",
        help="e.g. grader=openai/gpt-4o-mini (the judge of rubric benchmarks)",
    )
    p.add_argument(
        "--tasks",
        action="append",
        metavar="NAMES",
        help=f"comma-separated subset of: {', '.join(SUITE)} (default all)",
    )
    p.add_argument("--limit", type=int, help="samples per task (a quick look, not a result)")
    p.add_argument(
        "--log-dir",
        help="where logs and the summary go (default logs/suite-<model>); "
        "re-running into it resumes",
    )
    p.add_argument(
        "--data-dir", help="local data folder for every task (else $CAML_EVALS_DATA_DIR / Hub)"
    )
    p.add_argument(
        "--choice-mode",
        choices=["auto", "generate", "loglik"],
        default="auto",
        help="multiple-choice tasks: letter answers or log-likelihood (auto: loglik for caml/...)",
    )
    p.add_argument(
        "--task-arg",
        action="append",
        metavar="TASK.PARAM=VALUE",
        help="extra task parameter, e.g. hellaswag.shuffle=true (repeatable)",
    )
    p.add_argument(
        "--retries", type=int, default=3, help="eval_set retry attempts for failed tasks"
    )
    p.add_argument("--max-connections", type=int, help="concurrent model calls")
    p.add_argument("--display", choices=["full", "rich", "plain", "log", "none"], default=None)
    p.add_argument(
        "--summarize", metavar="LOG_DIR", help="only build the table from logs in LOG_DIR"
    )
    p.add_argument("--out", help="with --summarize: write the table here instead of LOG_DIR")
    p.set_defaults(func=run_cli)
