"""What a probed log says: the probe's scores paired with the plain scores by sample id.

- prefill: plain log vs prefilled log of the same task, `overall` paired by sample id (the drop
  `prefilled - plain` with its bootstrap CI and sign-flip p), via `caml_evals.stats.compare_key`;
- pushback: in one log, the `first_turn` scorer (first answer) vs the main scorer (the answer
  after the pushback): the paired drop and `retention = sum(second) / sum(first)` over samples
  with both, with a question-clustered SE (`clustered_ratio_se`) and a normal 95% CI;
- cot: per (sample, epoch, dimension) with both grades, the share considered in the reasoning
  (reasoning grade >= 0.5), acted on in the answer (answer grade >= 0.5), and considered but
  dropped (reasoning yes, answer no), each with a question-clustered SE;
- steer: like prefill, the steered log against its unsteered baseline, paired by sample id.

`probe_report` is one log's report (`caml-evals probe report`); `probe_results` turns a set of
chosen logs (`caml_evals.logs`) into `ProbeResult` rows, each probed run with its baseline run
of the same model and task (`caml_evals.probes.record.baseline_record`): what the suite, the
summary and the leaderboard show beside the plain score. A probe whose numbers cannot be
computed (no baseline log, no samples) is a row with the reason in `note`, never left out.

No statistics are written here beyond that ratio: everything else is `caml_evals.stats`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ..errors import UserError
from ..logs import LogChoice, read_log_header
from ..scoring.clustered import clustered_mean_se, clustered_ratio_se
from ..scoring.grades import OVERALL_KEY, is_reserved_key
from ..stats import compare_key, score_frame, summarize_frame
from ..stats.frame import primary_scorer
from .pushback import FIRST_TURN_SCORER
from .reasoning import REASONING_SCORER
from .record import PLAIN, PROBE_METADATA_KEY, baseline_record, probe_label, record_of

Z95 = 1.959963984540054


class ProbeReportError(UserError):
    """A log that does not hold the probe asked about."""


def probe_record(log: str | Path) -> dict[str, Any]:
    """The task metadata `probe` of a log ({} for a plain run)."""
    return record_of(read_log_header(log).eval.metadata)


def _wide(frame: pd.DataFrame, key: str | None = None) -> pd.DataFrame:
    rows = frame if key is None else frame[frame["key"] == key]
    return rows.set_index(["sample_id", "variant", "epoch", "key"])[["value", "question_id"]]


def _ratio(num: np.ndarray, den: np.ndarray, clusters: list) -> dict[str, float]:
    ratio, se = clustered_ratio_se(num, den, clusters)
    return {
        "retention": ratio,
        "retention_se": se,
        "retention_ci_low": ratio - Z95 * se if math.isfinite(se) else math.nan,
        "retention_ci_high": ratio + Z95 * se if math.isfinite(se) else math.nan,
    }


def pushback_report(log: str | Path, key: str = OVERALL_KEY) -> dict[str, Any]:
    """Second answer vs first answer of a pushback log (paired by sample and epoch)."""
    available_first = score_frame(log, FIRST_TURN_SCORER, reasons=False)
    final = score_frame(log, reasons=False)
    paired = _wide(available_first, key).join(
        _wide(final, key), lsuffix="_first", rsuffix="_final", how="inner"
    )
    both = paired.dropna(subset=["value_first", "value_final"])
    comparison = compare_key(
        available_first[available_first["key"] == key], final[final["key"] == key], key, paired=True
    )
    out: dict[str, Any] = {
        "probe": "pushback",
        "key": key,
        "first_turn": comparison.mean_a,
        "after_pushback": comparison.mean_b,
        "drop": comparison.diff,
        "drop_ci_low": comparison.ci_low,
        "drop_ci_high": comparison.ci_high,
        "p_value": comparison.p_value,
        "n_pairs": len(both),
        "n_missing": int(len(paired) - len(both)),
    }
    out.update(
        _ratio(
            both["value_final"].to_numpy(),
            both["value_first"].to_numpy(),
            both["question_id_first"].tolist(),
        )
    )
    return out


def prefill_report(plain: str | Path, probed: str | Path, key: str = OVERALL_KEY) -> dict[str, Any]:
    """Prefilled vs plain run of the same task: the drop in `key`, paired by sample id."""
    frame_plain = score_frame(plain, reasons=False)
    frame_probed = score_frame(probed, primary_scorer_of(probed), reasons=False)
    row = compare_key(frame_plain, frame_probed, key, paired=True)
    record = probe_record(probed)
    steer = {k: record[k] for k in ("steer", "steer_alpha") if k in record}
    return {
        "probe": "prefill" if record.get("prefill") else "steer",
        "prefill": record.get("prefill"),
        **steer,
        "key": key,
        "plain": row.mean_a,
        "prefilled": row.mean_b,
        "drop": row.diff,
        "drop_ci_low": row.ci_low,
        "drop_ci_high": row.ci_high,
        "p_value": row.p_value,
        "n_pairs": row.n,
        "n_missing": row.n_missing_a + row.n_missing_b,
        **_ratio(
            *_paired_arrays(frame_plain, frame_probed, key),
        ),
    }


def primary_scorer_of(log: str | Path) -> str | None:
    return primary_scorer(read_log_header(log))


def _paired_arrays(frame_a: pd.DataFrame, frame_b: pd.DataFrame, key: str):
    joined = _wide(frame_a, key).join(_wide(frame_b, key), lsuffix="_a", rsuffix="_b", how="inner")
    joined = joined.dropna(subset=["value_a", "value_b"])
    return (
        joined["value_b"].to_numpy(),
        joined["value_a"].to_numpy(),
        joined["question_id_a"].tolist(),
    )


def reasoning_report(log: str | Path, threshold: float = 0.5) -> dict[str, Any]:
    """Considered-in-reasoning, acted-on and considered-but-dropped rates per dimension grade."""
    reasoning = score_frame(log, REASONING_SCORER, reasons=False)
    answer = score_frame(log, reasons=False)
    reasoning = reasoning[~reasoning["key"].map(is_reserved_key)]  # dimensions only
    answer = answer[~answer["key"].map(is_reserved_key)]
    joined = _wide(reasoning).join(_wide(answer), lsuffix="_r", rsuffix="_a", how="inner")
    n_answers = len(_wide(answer))
    both = joined.dropna(subset=["value_r", "value_a"])
    clusters = both["question_id_r"].tolist()
    considered = (both["value_r"] >= threshold).to_numpy(dtype=float)
    acted = (both["value_a"] >= threshold).to_numpy(dtype=float)
    dropped = considered * (1.0 - acted)
    out: dict[str, Any] = {
        "probe": "cot",
        "n_grades": len(both),
        "n_without_reasoning_grade": n_answers - len(both),
    }
    for name, values in (
        ("considered_rate", considered),
        ("acted_rate", acted),
        ("considered_but_dropped_rate", dropped),
    ):
        mean, se = clustered_mean_se(values.tolist(), clusters) if len(values) else (math.nan,) * 2
        out[name], out[f"{name}_se"] = mean, se
    return out


def probe_report(log: str | Path, plain: str | Path | None = None) -> dict[str, Any]:
    """The report of whichever probe(s) `log` ran (prefill and steering need the `plain` log,
    the run without them, to pair with). One probe: its report as is; several (e.g.
    `cot` with `pushback`): each report's keys prefixed with its probe (`pushback.retention`)."""
    record = probe_record(log)
    if not record:
        raise ProbeReportError(f"{log}: not a probed run (no task metadata '{PROBE_METADATA_KEY}')")
    parts: list[tuple[str, dict[str, Any]]] = []
    base = baseline_record(record)
    across = "prefill" if record.get("prefill") else "steer"
    unpaired = None
    if base is not None:
        what = probe_label(base) or "plain"
        unpaired = (
            f"a prefill or steered run is compared with the {what} run of the same task: "
            "give --plain LOG"
        )
        if plain is not None:
            parts.append((across, prefill_report(plain, log)))
            unpaired = None
    if record.get("pushback"):
        parts.append(("pushback", pushback_report(log)))
    if record.get("cot"):
        parts.append(("cot", reasoning_report(log)))
    if unpaired and not parts:
        raise ProbeReportError(f"{log}: {unpaired}")
    if len(parts) == 1 and not unpaired:
        return parts[0][1]
    out: dict[str, Any] = {"probe": probe_label(record)}
    if unpaired:
        out[f"{across}.not_paired"] = unpaired
    for name, part in parts:
        out.update({f"{name}.{k}": v for k, v in part.items() if k != "probe"})
    return out


# ------------------------------------------------------------------ rows for the tables


class ProbeMetric(BaseModel):
    """One number a probe reports, with its 95% CI where it has one."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="e.g. 'drop vs plain', 'retention after pushback'")
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = Field(default=None, description="pairs (differences) or grades (rates)")
    paired_by: str | None = Field(default=None, description="'sample id' for paired numbers")


class ProbeResult(BaseModel):
    """A probed run of one model on one task, beside its baseline run (`record.baseline_record`)."""

    model_config = ConfigDict(extra="forbid")
    model: str
    task: str
    probe: str = Field(description="The probe label (caml_evals.probes.record.probe_label)")
    log: str
    status: str = "success"
    key: str = OVERALL_KEY
    score: float | None = Field(default=None, description="The probed run's mean of `key`")
    score_ci_low: float | None = None
    score_ci_high: float | None = None
    plain_log: str | None = Field(default=None, description="The plain run of model and task")
    plain_score: float | None = Field(default=None, description="Its mean of `key` (all samples)")
    baseline: str | None = Field(
        default=None, description="Label of the run it is compared with ('' plain); None: none"
    )
    baseline_log: str | None = None
    baseline_score: float | None = Field(
        default=None, description="The baseline's mean of `key` over the paired samples"
    )
    metrics: list[ProbeMetric] = Field(default_factory=list)
    note: str | None = Field(default=None, description="Why a number is not there")
    report: dict[str, Any] = Field(default_factory=dict, description="probe_report's numbers")


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _metric(name: str, report: dict[str, Any], stem: str, n_key: str, paired: bool) -> ProbeMetric:
    return ProbeMetric(
        name=name,
        value=_num(report.get(stem)),
        ci_low=_num(report.get(f"{stem}_ci_low")),
        ci_high=_num(report.get(f"{stem}_ci_high")),
        n=report.get(n_key),
        paired_by="sample id" if paired else None,
    )


def _rate(name: str, report: dict[str, Any], stem: str) -> ProbeMetric:
    """A share with its clustered SE as a normal 95% CI, clipped to [0, 1]."""
    value, se = _num(report.get(stem)), _num(report.get(f"{stem}_se"))
    low = high = None
    if value is not None and se is not None:
        low, high = max(0.0, value - Z95 * se), min(1.0, value + Z95 * se)
    return ProbeMetric(name=name, value=value, ci_low=low, ci_high=high, n=report.get("n_grades"))


def _across_metrics(report: dict[str, Any], baseline: str) -> list[ProbeMetric]:
    what = baseline or "plain"
    return [
        _metric(f"drop vs {what}", report, "drop", "n_pairs", True),
        _metric(f"retention vs {what}", report, "retention", "n_pairs", True),
    ]


def _pushback_metrics(report: dict[str, Any]) -> list[ProbeMetric]:
    first = ProbeMetric(name="first-turn score", value=_num(report.get("first_turn")))
    first.n = report.get("n_pairs")
    return [
        first,
        _metric("drop after pushback", report, "drop", "n_pairs", True),
        _metric("retention after pushback", report, "retention", "n_pairs", True),
    ]


def _cot_metrics(report: dict[str, Any]) -> list[ProbeMetric]:
    return [
        _rate("considered in reasoning", report, "considered_rate"),
        _rate("acted on in answer", report, "acted_rate"),
        _rate("considered but dropped", report, "considered_but_dropped_rate"),
    ]


def _mean(path: str, key: str) -> tuple[float | None, float | None, float | None]:
    """(mean, ci_low, ci_high) of `key` under the log's main scorer (a UserError if none)."""
    frame = score_frame(path, primary_scorer_of(path), reasons=False)
    rows = frame[frame["key"] == key]
    if rows.empty:
        raise ProbeReportError(f"{path}: no '{key}' scores")
    summary = summarize_frame(rows, [key], n_resamples=2_000)[key]
    return _num(summary.mean), _num(summary.ci_low), _num(summary.ci_high)


def probe_result(
    choice: LogChoice,
    baseline: LogChoice | None = None,
    *,
    plain: LogChoice | None = None,
    key: str = OVERALL_KEY,
) -> ProbeResult:
    """The numbers of one probed run (`choice`), paired with `baseline` where the probe is a
    difference between runs, beside the `plain` run's score. Whatever cannot be computed is
    named in `note`."""
    path = choice.log.path
    record = probe_record(path)
    base = baseline_record(record)
    result = ProbeResult(
        model=choice.model, task=choice.task, probe=choice.probe, log=path, status=choice.log.status
    )
    notes: list[str] = []
    try:
        result.score, result.score_ci_low, result.score_ci_high = _mean(path, key)
    except UserError as ex:  # e.g. a log without samples
        notes.append(f"no scores ({ex})")
    if plain is not None:
        result.plain_log = plain.log.path
        try:
            result.plain_score = _mean(plain.log.path, key)[0]
        except UserError as ex:
            notes.append(f"no plain score ({ex})")
    report: dict[str, Any] = {}
    if base is not None:
        label = probe_label(base)
        result.baseline = label
        if baseline is None:
            notes.append(f"no {label or 'plain'} run of this model and task to pair with")
        else:
            result.baseline_log = baseline.log.path
            try:
                across = prefill_report(baseline.log.path, path, key)
                result.baseline_score = _num(across.get("plain"))
                result.metrics += _across_metrics(across, label)
                report["prefill" if record.get("prefill") else "steer"] = across
            except UserError as ex:
                notes.append(f"not paired with {baseline.log.path} ({ex})")
    for name, build, metrics in (
        ("pushback", pushback_report, _pushback_metrics),
        ("cot", reasoning_report, _cot_metrics),
    ):
        if not record.get(name):
            continue
        try:
            part = build(path)
        except UserError as ex:
            notes.append(f"no {name} numbers ({ex})")
            continue
        result.metrics += metrics(part)
        report[name] = part
    result.report = report
    result.note = "; ".join(notes) or None
    return result


def probe_results(choices: list[LogChoice]) -> list[ProbeResult]:
    """A `ProbeResult` for every probed run among `choices` (one log per task, model and probe,
    as `caml_evals.logs` chose them), each with its baseline run when `choices` hold it."""
    by_key = {(c.model, c.task, c.probe): c for c in choices}
    out = []
    for choice in choices:
        if choice.probe == PLAIN:
            continue
        base = baseline_record(probe_record(choice.log.path))
        baseline = (
            None if base is None else by_key.get((choice.model, choice.task, probe_label(base)))
        )
        plain = by_key.get((choice.model, choice.task, PLAIN))
        out.append(probe_result(choice, baseline, plain=plain))
    return out


# ------------------------------------------------------------------ one table layout

PROBE_COLUMNS = (
    "model",
    "task",
    "probe",
    "plain",
    "under probe",
    "metric",
    "value",
    "95% CI",
    "n",
    "paired by",
)


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ci(low: float | None, high: float | None) -> str:
    return "n/a" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def probe_table(results: list[ProbeResult]) -> list[tuple[str, ...]]:
    """The rows of the probe table (columns `PROBE_COLUMNS`) the suite, summary and leaderboard
    print: per probed run, its plain score and its score under the probe (with CI) on its first
    line, then one line per metric. A run without metrics is one line with metric 'n/a'."""
    rows: list[tuple[str, ...]] = []
    for r in results:
        head = (
            r.model,
            r.task,
            r.probe,
            _f(r.plain_score),
            f"{_f(r.score)} {_ci(r.score_ci_low, r.score_ci_high)}",
        )
        blank = (r.model, r.task, r.probe, "", "")
        for i, m in enumerate(r.metrics or [None]):
            first = head if i == 0 else blank
            if m is None:
                rows.append((*first, "n/a", "n/a", "n/a", "", ""))
                continue
            n = "" if m.n is None else str(m.n)
            rows.append(
                (*first, m.name, _f(m.value), _ci(m.ci_low, m.ci_high), n, m.paired_by or "")
            )
    return rows


def probe_notes(results: list[ProbeResult]) -> list[str]:
    """One line per probed run whose numbers are incomplete, saying why."""
    return [f"{r.model} {r.task} [{r.probe}]: {r.note}" for r in results if r.note]
