"""`caml-evals summary LOG...`: the score table of one or more eval logs (the demo's last step).

The numbers are `caml_evals.summary.summarise_log`'s (headline from the task card, clustered
SE, bootstrap CI over questions, missing counts, `missing_rate` as the share of grades). Logs
of probed runs get a depth-probe table after the scores: each beside the plain log of the same
model and task among those given (`summarise_probes`; in `--json`, each row's `probe_result`). A
missing, truncated or corrupt log is one line naming the file and exit code 2; `--json` is
written whole or not at all (an unwritable path: one line, exit 2, nothing left behind).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from caml_evals.scoring.judge_settings import judge_text
from caml_evals.summary import DEFAULT_RESAMPLES, LogSummary


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _fmt_ci(low: float | None, high: float | None) -> str:
    return "n/a" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def _fmt_n(v: int | None) -> str:
    return "n/a" if v is None else str(v)


def _task(r: LogSummary) -> str:
    """The task, with the depth probe of the run when it had one (`ahb [cot]`)."""
    return f"{r.task} [{r.probe}]" if r.probe else r.task


def print_plain(rows: list[LogSummary], detail: bool = True) -> None:
    """Tab-separated lines for pipes and CI logs (rich would truncate to 80 columns).

    The first eight columns are the original ones; CI, missing count and the judge (grader
    models and settings, `judge_text`) are appended."""
    print(
        "task\tmodel\tstatus\tsamples\tscore\tse\tmissing\tlog\tci_low\tci_high\tn_missing\tjudge"
    )
    for r in rows:
        print(
            "\t".join(
                [
                    _task(r),
                    r.model,
                    r.status,
                    str(r.samples),
                    _fmt(r.score),
                    _fmt(r.stderr),
                    _fmt(r.missing_rate),
                    r.log,
                    _fmt(r.ci_low),
                    _fmt(r.ci_high),
                    _fmt_n(r.n_missing),
                    judge_text(r.judge),
                ]
            )
        )
    if detail:
        for r in rows:
            for k, v in r.metrics.items():
                print(f"{_task(r)}\t{r.model}\t{k}\t{_fmt(v)}")


def print_summaries(rows: list[LogSummary], detail: bool = True) -> None:
    if not sys.stdout.isatty():
        print_plain(rows, detail)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="caml-evals scores (clustered SE, bootstrap CI over questions)")
    columns = (
        "task",
        "model",
        "status",
        "samples",
        "metric",
        "score",
        "± se",
        "CI",
        "missing",
        "n missing",
        "judge",
        "log",
    )
    for col in columns:
        table.add_column(col)
    for r in rows:
        table.add_row(
            _task(r),
            r.model,
            r.status,
            str(r.samples),
            r.headline or "n/a",
            _fmt(r.score),
            _fmt(r.stderr),
            _fmt_ci(r.ci_low, r.ci_high),
            _fmt(r.missing_rate),
            _fmt_n(r.n_missing),
            judge_text(r.judge),
            Path(r.log).name,
        )
    console.print(table)
    if detail:
        for r in rows:
            hidden = {r.headline, f"{r.headline}_stderr", "missing_rate"}
            dims = {k: v for k, v in r.metrics.items() if k not in hidden}
            if not dims:
                continue
            t = Table(title=f"{_task(r)} on {r.model}: all metrics")
            for col in ("metric", "value", "CI", "n missing"):
                t.add_column(col)
            for k, v in dims.items():
                s = r.stats.get(k)
                t.add_row(k, _fmt(v), _fmt_ci(*r.interval(k)), _fmt_n(s.n_missing if s else None))
            console.print(t)
            if r.dataset_problems:
                console.print(f"dataset problems reported at load: {r.dataset_problems}")
            if r.stats_error:
                console.print(f"no statistics ({r.stats_error}): Inspect's metrics shown")
    for r in rows:
        console.print(f"log: {r.log}")


def check_output_file(path: str | Path) -> Path:
    """An OutputError naming `path` now if a file cannot be written there (creates nothing)."""
    from caml_evals.errors import OutputError
    from caml_evals.outputs import writable_dir

    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: cannot write the output file: it is a folder")
    writable_dir(path.parent)
    return path


def run(args: argparse.Namespace) -> int:
    from caml_evals.cli.suite import print_probes
    from caml_evals.jsonsafe import nan_to_none
    from caml_evals.logs import find_logs
    from caml_evals.summary import summarise_log, summarise_probes

    logs = find_logs(args.logs, require=True)
    if args.json:
        check_output_file(args.json)  # fail now, before the work
    rows = [
        summarise_log(p, ci=args.ci, n_resamples=args.n_resamples, seed=args.seed) for p in logs
    ]
    probes = summarise_probes(logs) if any(r.probe for r in rows) else []
    by_log = {p.log: p for p in probes}
    for r in rows:
        r.probe_result = by_log.get(r.log)
    print_summaries(rows, detail=not args.brief)
    print_probes(probes)
    if args.json:
        from caml_evals.outputs import write_text

        payload = nan_to_none([r.model_dump() for r in rows])
        write_text(args.json, json.dumps(payload, indent=2, allow_nan=False))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("summary", help="score tables of eval logs (files or folders)")
    p.add_argument("logs", nargs="+", help=".eval files or folders of them")
    p.add_argument("--json", help="also write the summary as JSON to this file")
    p.add_argument("--brief", action="store_true", help="only the one-line-per-log table")
    p.add_argument("--ci", type=float, default=0.95, help="bootstrap CI level (default 0.95)")
    p.add_argument(
        "--n-resamples",
        type=int,
        default=DEFAULT_RESAMPLES,
        help="bootstrap resamples of questions (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (same seed, same CI)")
    p.set_defaults(func=run)
