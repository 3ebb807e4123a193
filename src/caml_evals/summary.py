"""The summary row of an eval log: what `caml-evals summary` and the suite table print.

The numbers come from `caml_evals.stats`, computed from every per-sample, per-epoch score in the
log (`score_frame` for each scorer), not taken from the metrics Inspect wrote into the header:
each score key gets a mean, a standard error clustered by question (epochs and variable
expansions of one question are one cluster), a bootstrap CI over questions and its missing
count (unparseable grades and errored samples: excluded and counted, never 0).

One row per log: the headline (the task card's headline metric, `stats.headline.headline_for`)
with its SE, CI and missing count. `missing_rate` of a rubric log is the share the README defines:
missing grades / all criterion x grader grades, summed over samples and epochs from the scorer's
per-sample counts (`missing_count`, `grades_expected` in score metadata), with a clustered ratio
SE; never a mean of per-sample rates (which weighs a 2-grade sample like a 6-grade one). `metrics` holds every metric under Inspect's names, those the stats computed
replaced by the stats' numbers (`accuracy`, `overall`, `matching`, ... and their `*_stderr`
are the clustered ones; keys Inspect reports under another name are mapped, e.g. a scalar
score's `overall` is `accuracy`/`stderr`, TAC's `welfare` is `welfare_rate`), the rest (grouped
rates such as `order=reversed`) as Inspect wrote them; `inspect_metrics` keeps Inspect's own
values and `stats` the full summary per metric name. A log without samples falls back to
Inspect's metrics, with the reason in `stats_error`. A missing, truncated or corrupt log is a
`LogReadError` naming the file (one line, exit 2 from the CLI). The command is
`caml_evals.cli.summary`.

A log of a task run with a depth probe (`-T prefill=...`, `pushback=...`, `cot=true`,
`steer=...`) says so in `probe` (its label); `summarise_probes` gives each probed log's numbers
beside the plain log of the same model and task among the logs given (paired by sample id;
`caml_evals.probes.report.probe_results`), and the CLI puts them in `probe_result`.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

from inspect_ai.log import EvalLog
from pydantic import BaseModel, Field

from caml_evals.logs import read_log_header
from caml_evals.probes.record import probe_label, record_of
from caml_evals.probes.report import ProbeResult, probe_results
from caml_evals.scoring.clustered import clustered_ratio_se
from caml_evals.scoring.grades import MISSING_RATE_KEY
from caml_evals.scoring.judge_settings import logged_judge
from caml_evals.stats import ScoreFrameError, Summary, score_frame, summarize_frame
from caml_evals.stats.frame import cluster_id
from caml_evals.stats.headline import METRIC_NAMES, SCALAR_METRICS, headline_for
from caml_evals.stats.reader import LogScores, read_log_scores

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
    dataset_problems: dict[str, Any] = Field(
        default_factory=dict,
        description="Problems the loader reported (counts, or counts per file)",
    )
    mode: str | None = Field(default=None, description="The task's `mode` (eval metadata), if any")
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
    probe: str = Field(default="", description="The depth probe of the run ('' for none)")
    judge: dict[str, Any] | None = Field(
        default=None,
        description="The judge the log records: grader models and judge_settings "
        "(caml_evals.scoring.judge_settings.logged_judge); None without a judge",
    )
    probe_result: ProbeResult | None = Field(
        default=None, description="The probe's numbers beside the plain run (summarise_probes)"
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


def _scorers(header: EvalLog, records: LogScores) -> list[str]:
    names = [s.scorer for s in (header.results.scores if header.results else [])]
    for sample in records.samples:
        names.extend(sample.scores)
    return list(dict.fromkeys(names))


def grade_share(records: LogScores, scorer: str, ci: float = 0.95) -> Summary | None:
    """Missing grades / expected grades of one rubric scorer over every scored sample and epoch,
    with the clustered (questions) ratio SE and a normal CI clipped to [0, 1]; None when the
    scorer does not record the counts (not a rubric scorer, or an older log)."""
    from scipy.stats import norm

    missing: list[float] = []
    expected: list[float] = []
    clusters: list[str] = []
    for sample in records.samples:
        score = sample.scores.get(scorer)
        if score is None or score.counts is None:
            continue
        missing.append(score.counts[0])
        expected.append(score.counts[1])
        clusters.append(cluster_id(sample.ids, str(sample.id)))
    if not expected:
        return None
    share, se = clustered_ratio_se(missing, expected, clusters)
    half = float(norm.ppf(0.5 + ci / 2)) * se if not math.isnan(se) else math.nan
    low, high = (
        (math.nan, math.nan)
        if math.isnan(half)
        else (max(0.0, share - half), min(1.0, share + half))
    )
    return Summary(
        mean=share,
        se=se,
        ci_low=low,
        ci_high=high,
        n=int(sum(expected)),
        n_clusters=len(set(clusters)),
        n_missing=0,
        ci=ci,
        method="normal (ratio of grade counts)",
    )


def summarise_log(
    path: str | Path,
    *,
    ci: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | None = 0,
) -> LogSummary:
    """The summary row of one log (see the module docstring).

    Reads the log's header and its sample summaries through the one score reader (cached per
    file), never the whole samples with their transcripts: a summary of a 5,000-question log
    costs what its statistics cost."""
    log = read_log_header(path)
    records = read_log_scores(path)
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
        if not records.samples:
            raise ScoreFrameError(f"log {path} has no samples (status {log.status})")
        for scorer in _scorers(log, records):
            header = {n for e in scores if e.scorer == scorer for n in e.metrics}
            frame = score_frame(path, scorer=scorer)
            options = {"ci": ci, "n_resamples": n_resamples, "seed": seed}
            share = grade_share(records, scorer, ci=ci)
            for key, summary in summarize_frame(frame, **options).items():
                if key == MISSING_RATE_KEY and share is not None:
                    summary = share  # the share of grades, not a mean of per-sample rates
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

    valued = [m for m, v in metrics.items() if v is not None]
    headline = headline_for(log.eval.task, metrics, valued)
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
        mode=(log.eval.metadata or {}).get("mode"),
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
        probe=probe_label(record_of(log.eval.metadata)),
        judge=logged_judge(log),
    )


def summarise_probes(paths: Collection[str | Path]) -> list[ProbeResult]:
    """Each probed log among `paths` with its numbers beside the plain log of the same model and
    task among them (one log per task, model and probe by the rule of `caml_evals.logs`)."""
    from caml_evals.logs import choose_entries, log_entry

    return probe_results(choose_entries(log_entry(p) for p in paths))
