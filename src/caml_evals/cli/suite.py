"""`caml-evals suite`: every benchmark (compassion set + controls) on one model, one table.

    caml-evals suite --model caml/smollm2 --model-role grader=openai/gpt-4o-mini --limit 20
    caml-evals suite --summarize logs/suite-smollm2          # table from existing logs only

The work is `caml_evals.suite` (benchmarks from the task cards, Inspect's resumable `eval_set`,
the summary table); this module parses arguments and prints. Bad arguments, a missing or
unreadable log folder and an unwritable `--out` are one line and exit code 2; a run in which a
task failed exits 1 (its row says which).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caml_evals.probes.report import ProbeResult
    from caml_evals.suite import SuiteSummary


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def _fmt_ci(low: float | None, high: float | None) -> str:
    return "n/a" if low is None or high is None else f"[{_fmt(low)}, {_fmt(high)}]"


def print_probes(results: list[ProbeResult]) -> None:
    """The depth-probe table (`caml_evals.probes.report.probe_table`): rich on a terminal,
    tab-separated after a `# depth probes` line when piped; nothing without probed runs."""
    from caml_evals.probes.report import PROBE_COLUMNS, probe_notes, probe_table

    if not results:
        return
    rows, notes = probe_table(results), probe_notes(results)
    if not sys.stdout.isatty():
        print("# depth probes")
        print("\t".join(c.replace(" ", "_") for c in PROBE_COLUMNS))
        for row in rows:
            print("\t".join(row))
        for note in notes:
            print(f"# {note}")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="depth probes (beside the plain run; differences paired by sample id)")
    for col in PROBE_COLUMNS:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    for note in notes:
        console.print(note)


def print_summary(summary: SuiteSummary) -> None:
    """The headline table (then the probe table): rich on a terminal, tab-separated when piped."""
    from caml_evals.scoring.judge_settings import judge_text
    from caml_evals.suite import task_label

    if not sys.stdout.isatty():
        print(
            "model\ttask\tmetric\tvalue\tse\tbetter\tmissing\tsamples\tstatus\tci_low\tci_high"
            "\tjudge"
        )
        for r in summary.rows:
            print(
                "\t".join(
                    [
                        r.model,
                        task_label(r),
                        r.headline or "n/a",
                        _fmt(r.value),
                        _fmt(r.stderr),
                        r.better,
                        _fmt(r.missing),
                        str(r.samples),
                        r.status,
                        _fmt(r.ci_low),
                        _fmt(r.ci_high),
                        judge_text(r.judge),
                    ]
                )
            )
        for u in summary.unavailable:
            print(f"-\t{u.name}\t-\t-\t-\t-\t-\t0\tunavailable: {u.reason}\t-\t-\t-")
        print_probes(summary.probes)
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
        "judge",
    ):
        table.add_column(col)
    for r in summary.rows:
        table.add_row(
            r.model,
            task_label(r),
            r.headline or "n/a",
            _fmt(r.value),
            _fmt(r.stderr),
            _fmt_ci(r.ci_low, r.ci_high),
            r.better,
            _fmt(r.missing),
            str(r.samples),
            r.status,
            judge_text(r.judge),
        )
    for u in summary.unavailable:
        table.add_row("", u.name, "", "", "", "", "", "", "0", f"unavailable: {u.reason}", "")
    Console().print(table)
    print_probes(summary.probes)


def _config_error(message: str) -> Exception:
    from caml_evals.errors import ConfigError

    return ConfigError(message)


def _parse_roles(specs: Sequence[str]) -> dict[str, str]:
    roles: dict[str, str] = {}
    for spec in specs:
        role, sep, model = spec.partition("=")
        if not sep or not role.strip() or not model.strip():
            raise _config_error(f"--model-role expects ROLE=MODEL, got {spec!r}")
        roles[role.strip()] = model.strip()
    return roles


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_kv(spec: str, flag: str) -> tuple[str, Any]:
    key, sep, value = spec.partition("=")
    if not sep or not key.strip():
        raise _config_error(f"{flag} expects KEY=VALUE, got {spec!r}")
    return key.strip(), _parse_value(value)


def _parse_task_args(specs: Sequence[str]) -> dict[str, dict[str, Any]]:
    from caml_evals.suite import check_task_names

    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        task, dot, param = key.partition(".")
        if not sep or not dot or not task or not param:
            raise _config_error(f"--task-arg expects TASK.PARAM=VALUE, got {spec!r}")
        check_task_names([task])
        out.setdefault(task, {})[param] = _parse_value(value)
    return out


def _split_tasks(values: Sequence[str] | None) -> list[str] | None:
    from caml_evals.suite import check_task_names

    if not values:
        return None
    return check_task_names([n.strip() for v in values for n in v.split(",") if n.strip()])


def run(args: argparse.Namespace) -> int:
    from caml_evals.suite import SUMMARY_JSON, SUMMARY_MD, run_suite, summarise_logs, write_summary

    if args.summarize:
        from caml_evals.outputs import writable_dir

        out = writable_dir(args.out or args.summarize)  # before reading: fail fast
        summary = summarise_logs(args.summarize, require=True)
        md, js = write_summary(summary, out)
        print_summary(summary)
        print(f"wrote {md} and {js}")
        return 0
    if not args.model:
        raise _config_error("--model is required (or use --summarize LOG_DIR)")
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
        model_args=dict(_parse_kv(a, "--model-arg") for a in args.model_arg or []),
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
        help="comma-separated subset of the suite's tasks (the task cards of the compassion "
        "and control groups; `caml-evals tasks` lists them; default all)",
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
    p.set_defaults(func=run)
