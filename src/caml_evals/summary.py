"""`caml-evals summary LOG...`: the score table of one or more eval logs (the demo's last step).

The numbers come from `caml_evals.stats`, computed from every per-sample, per-epoch score in the
log (`score_frame` for each scorer), not taken from the metrics Inspect wrote into the header:
each score key gets a mean, a standard error clustered by question (epochs and variable
expansions of one question are one cluster), a bootstrap CI over questions and its missing
count (unparseable grades and errored samples: excluded and counted, never 0).

One row per log: the headline (the first of `HEADLINE_METRICS` with a value) with its SE, CI and
missing count. `metrics` holds every metric under Inspect's names, those the stats computed
replaced by the stats' numbers (`accuracy`, `overall`, `matching`, ... and their `*_stderr`
are the clustered ones; keys Inspect reports under another name are mapped, e.g. a scalar
score's `overall` is `accuracy`/`stderr`, TAC's `welfare` is `welfare_rate`), the rest (grouped
rates such as `order=reversed`) as Inspect wrote them; `inspect_metrics` keeps Inspect's own
values and `stats` the full summary per metric name. A log without samples falls back to
Inspect's metrics, with the reason in `stats_error`. `--json` writes strict JSON (NaN as null).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Collection
from pathlib import Path

from inspect_ai.log import EvalLog, list_eval_logs, read_eval_log
from pydantic import BaseModel, Field

from caml_evals.stats import ScoreFrameError, Summary, score_frame, summarize_frame
from caml_evals.stats.headline import HEADLINE_METRICS, METRIC_NAMES, SCALAR_METRICS
from caml_evals.stats.report import _nan_to_none

DEFAULT_RESAMPLES = 2_000  # a table, not a test: CI ends within a few % of an SE of 10,000's


class LogSummary(BaseModel):
    log: str
    task: str
    model: str
    status: str
    samples: int
    headline: str | None = Field(description="Metric name of the headline (Inspect's naming)")
    score: float | None
    stderr: float | None = Field(description="SE of the headline, clustered by question")
    missing_rate: float | None
    metrics: dict[str, float | None]
    dataset_problems: dict[str, int] = {}
    ci_low: float | None = Field(default=None, description="Bootstrap CI of the headline")
    ci_high: float | None = None
    ci: float = 0.95
    n: int | None = Field(default=None, description="Headline observations used (x epochs)")
    n_questions: int | None = None
    n_missing: int | None = Field(
        default=None, description="Headline observations missing: excluded, never 0"
    )
    missing_reasons: dict[str, int] = Field(
        default_factory=dict, description="Why the headline's missing observations are missing"
    )
    headline_key: str | None = Field(default=None, description="Score key of the headline")
    stats: dict[str, Summary] = Field(
        default_factory=dict, description="caml_evals.stats summary per metric name of `metrics`"
    )
    inspect_metrics: dict[str, float | None] = Field(
        default_factory=dict, description="The header metrics exactly as Inspect computed them"
    )
    stats_error: str | None = Field(
        default=None, description="Why no statistics were computed (metrics are then Inspect's)"
    )

    def interval(self, metric: str) -> tuple[float | None, float | None]:
        """(ci_low, ci_high) of a metric name; (None, None) when the stats have none."""
        s = self.stats.get(metric)
        return (None, None) if s is None else (_clean(s.ci_low), _clean(s.ci_high))


def _clean(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _metric_name(key: str, header: Collection[str]) -> str:
    """The name Inspect reports score key `key` under, given one scorer's header metrics."""
    if key == "overall" and "overall" not in header:
        scalar = next((m for m in SCALAR_METRICS if m in header), None)
        if scalar is not None:
            return scalar
    return METRIC_NAMES.get(key, key)


def _se_name(name: str, header: Collection[str]) -> str:
    """Where Inspect keeps the SE of metric `name`: `x_stderr`, `x stderr`, or `stderr`."""
    for candidate in (f"{name}_stderr", f"{name} stderr"):
        if candidate in header:
            return candidate
    return "stderr" if name in SCALAR_METRICS and "stderr" in header else f"{name}_stderr"


def _scorers(log: EvalLog) -> list[str]:
    names = [s.scorer for s in (log.results.scores if log.results else [])]
    for sample in log.samples or []:
        names.extend(sample.scores or {})
    return list(dict.fromkeys(names))


def summarise_log(
    path: str | Path,
    *,
    ci: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | None = 0,
) -> LogSummary:
    """The summary row of one log (see the module docstring); reads the whole log."""
    log = read_eval_log(str(path))
    scores = log.results.scores if log.results else []
    inspect_metrics: dict[str, float | None] = {}
    owner: dict[tuple[str, str], str] = {}  # (scorer, Inspect metric name) -> name in metrics
    for entry in scores:
        for name, m in entry.metrics.items():
            merged = name if name not in inspect_metrics else f"{entry.name}/{name}"
            inspect_metrics[merged] = _clean(m.value)
            owner.setdefault((entry.scorer, name), merged)
    metrics = dict(inspect_metrics)
    stats: dict[str, Summary] = {}
    key_of: dict[str, str] = {}
    reasons: dict[str, dict[str, int]] = {}
    stats_error = None

    def place(scorer: str, name: str) -> str:
        if (scorer, name) in owner:
            return owner[(scorer, name)]
        merged = name if name not in metrics else f"{scorer}/{name}"
        owner[(scorer, name)] = merged
        return merged

    try:
        for scorer in _scorers(log):
            header = {n for e in scores if e.scorer == scorer for n in e.metrics}
            frame = score_frame(log, scorer=scorer)
            options = {"ci": ci, "n_resamples": n_resamples, "seed": seed}
            for key, summary in summarize_frame(frame, **options).items():
                name = _metric_name(key, header)
                target, se_target = place(scorer, name), place(scorer, _se_name(name, header))
                metrics[target], metrics[se_target] = _clean(summary.mean), _clean(summary.se)
                stats[target], key_of[target] = summary, key
                gone = frame.loc[(frame["key"] == key) & frame["value"].isna(), "missing"]
                reasons[target] = {
                    str(r): int(c) for r, c in gone.fillna("unknown").value_counts().items()
                }
    except ScoreFrameError as ex:  # e.g. a failed run without samples: Inspect's numbers only
        metrics, stats, key_of, reasons = dict(inspect_metrics), {}, {}, {}
        stats_error = str(ex)

    present = [m for m in HEADLINE_METRICS if m in metrics]
    headline = next((m for m in present if metrics[m] is not None), present[0] if present else None)
    top = stats.get(headline) if headline else None
    if top is not None:
        stderr = _clean(top.se)
    else:  # no stats: Inspect's SE as before
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
        ci_low=_clean(top.ci_low) if top else None,
        ci_high=_clean(top.ci_high) if top else None,
        ci=ci,
        n=top.n if top else None,
        n_questions=top.n_clusters if top else None,
        n_missing=top.n_missing if top else None,
        missing_reasons=reasons.get(headline, {}) if headline else {},
        headline_key=key_of.get(headline) if headline else None,
        stats=stats,
        inspect_metrics=inspect_metrics,
        stats_error=stats_error,
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


def _fmt_ci(low: float | None, high: float | None) -> str:
    return "n/a" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def _fmt_n(v: int | None) -> str:
    return "n/a" if v is None else str(v)


def print_plain(rows: list[LogSummary], detail: bool = True) -> None:
    """Tab-separated lines for pipes and CI logs (rich would truncate to 80 columns).

    The first eight columns are the original ones; CI and missing count are appended."""
    print("task\tmodel\tstatus\tsamples\tscore\tse\tmissing\tlog\tci_low\tci_high\tn_missing")
    for r in rows:
        print(
            "\t".join(
                [
                    r.task,
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
                ]
            )
        )
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
        "log",
    )
    for col in columns:
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.task,
            r.model,
            r.status,
            str(r.samples),
            r.headline or "n/a",
            _fmt(r.score),
            _fmt(r.stderr),
            _fmt_ci(r.ci_low, r.ci_high),
            _fmt(r.missing_rate),
            _fmt_n(r.n_missing),
            Path(r.log).name,
        )
    console.print(table)
    if detail:
        for r in rows:
            hidden = {r.headline, f"{r.headline}_stderr", "missing_rate"}
            dims = {k: v for k, v in r.metrics.items() if k not in hidden}
            if not dims:
                continue
            t = Table(title=f"{r.task} on {r.model}: all metrics")
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


def run(args: argparse.Namespace) -> int:
    logs = find_logs(args.logs)
    if not logs:
        print("no eval logs found in " + ", ".join(args.logs), file=sys.stderr)
        return 1
    rows = [
        summarise_log(p, ci=args.ci, n_resamples=args.n_resamples, seed=args.seed) for p in logs
    ]
    print_summaries(rows, detail=not args.brief)
    if args.json:
        payload = _nan_to_none([r.model_dump() for r in rows])
        Path(args.json).write_text(json.dumps(payload, indent=2, allow_nan=False))
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
