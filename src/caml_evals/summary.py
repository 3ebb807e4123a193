"""`caml-evals summary LOG...`: the score table of one or more eval logs (the demo's last step).

Reads each log's aggregated metrics (header only, fast) and prints one row per task/model with
the headline score, its standard error, the missing rate and the per-dimension means; writes the
same as JSON with `--json`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from inspect_ai.log import list_eval_logs, read_eval_log
from pydantic import BaseModel


class LogSummary(BaseModel):
    log: str
    task: str
    model: str
    status: str
    samples: int
    headline: str | None
    score: float | None
    stderr: float | None
    missing_rate: float | None
    metrics: dict[str, float | None]
    dataset_problems: dict[str, int] = {}


def _clean(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def summarise_log(path: str | Path) -> LogSummary:
    log = read_eval_log(str(path), header_only=True)
    metrics: dict[str, float | None] = {}
    for scorer in log.results.scores if log.results else []:
        for name, m in scorer.metrics.items():
            metrics[name if name not in metrics else f"{scorer.name}/{name}"] = _clean(m.value)
    headline = next(
        (k for k in ("overall", "welfare_rate", "acc_norm", "matching", "score", "accuracy", "mean") if k in metrics),
        None,
    )
    stderr = metrics.get(f"{headline}_stderr") if headline else None
    if stderr is None and headline:
        stderr = metrics.get("stderr")
    return LogSummary(
        log=str(path),
        task=log.eval.task,
        model=log.eval.model,
        status=log.status,
        samples=log.results.completed_samples if log.results else 0,
        headline=headline,
        score=metrics.get(headline) if headline else None,
        stderr=stderr,
        missing_rate=metrics.get("missing_rate"),
        metrics=metrics,
        dataset_problems=(log.eval.metadata or {}).get("dataset_problems", {}) or {},
    )


def find_logs(paths: list[str]) -> list[str]:
    found: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found.extend(info.name.removeprefix("file://") for info in list_eval_logs(str(path)))
        elif path.exists():
            found.append(str(path))
        else:
            raise FileNotFoundError(f"no such log or folder: {p}")
    return found


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def print_plain(rows: list[LogSummary], detail: bool = True) -> None:
    """Tab-separated lines for pipes and CI logs (rich would truncate to 80 columns)."""
    print("task\tmodel\tstatus\tsamples\tscore\tse\tmissing\tlog")
    for r in rows:
        print("\t".join([r.task, r.model, r.status, str(r.samples), _fmt(r.score), _fmt(r.stderr),
                         _fmt(r.missing_rate), r.log]))
    if detail:
        for r in rows:
            for k, v in r.metrics.items():
                print(f"{r.task}\t{r.model}\t{k}\t{_fmt(v)}")


def print_summaries(rows: list[LogSummary], detail: bool = True) -> None:
    if not sys.stdout.isatty():
        print_plain(rows, detail)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="caml-evals scores")
    for col in ("task", "model", "status", "samples", "score", "± se", "missing", "log"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.task, r.model, r.status, str(r.samples), _fmt(r.score), _fmt(r.stderr),
                      _fmt(r.missing_rate), Path(r.log).name)
    console.print(table)
    if detail:
        for r in rows:
            dims = {k: v for k, v in r.metrics.items() if k not in {r.headline, f"{r.headline}_stderr", "missing_rate"}}
            if not dims:
                continue
            t = Table(title=f"{r.task} on {r.model}: all metrics")
            t.add_column("metric")
            t.add_column("value")
            for k, v in dims.items():
                t.add_row(k, _fmt(v))
            console.print(t)
            if r.dataset_problems:
                console.print(f"dataset problems reported at load: {r.dataset_problems}")
    for r in rows:
        console.print(f"log: {r.log}")


def run(args: argparse.Namespace) -> int:
    logs = find_logs(args.logs)
    if not logs:
        print("no eval logs found in " + ", ".join(args.logs), file=sys.stderr)
        return 1
    rows = [summarise_log(p) for p in logs]
    print_summaries(rows, detail=not args.brief)
    if args.json:
        Path(args.json).write_text(json.dumps([r.model_dump() for r in rows], indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("summary", help="score tables of eval logs (files or folders)")
    p.add_argument("logs", nargs="+", help=".eval files or folders of them")
    p.add_argument("--json", help="also write the summary as JSON to this file")
    p.add_argument("--brief", action="store_true", help="only the one-line-per-log table")
    p.set_defaults(func=run)
