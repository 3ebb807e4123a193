"""Score frames: every per-sample, per-epoch score of one or more Inspect logs, in long format.

Everything else in `caml_evals.stats` starts from this table, so it is the one place that knows
how Inspect stores scores. WHY long format: rubric scores are dicts whose keys differ per
sample (each question is tagged with its own dimensions), choice scores are scalars; one row
per (log, sample, epoch, key) holds both without inventing values for keys a sample never had.

A missing score (judge reply that could not be parsed, grader error, errored sample) is a row
with `value = NaN` and a reason in `missing`; it is never turned into 0. An errored sample
(no score at all) gets such a row for every key its scorer wrote for the same sample in other
epochs, else for every key the scorer writes on all scored samples of the log (a rubric sample:
the non-dimension keys plus its own tagged dimensions), so the loss shows on the real keys and
no `overall` is invented for a scorer that has none.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from inspect_ai.log import EvalLog, EvalSample, list_eval_logs, read_eval_log

from caml_evals.scoring.grades import MISSING_RATE_KEY, OVERALL_KEY, dimension_keys

__all__ = ["MISSING_RATE_KEY", "OVERALL_KEY", "missing_counts", "score_frame", "score_to_float"]

# Inspect's letter values (inspect_ai.scorer CORRECT/INCORRECT/PARTIAL/NOANSWER) as Inspect's own
# accuracy metric maps them, so our means equal the means Inspect prints for choice tasks.
_LETTER_VALUES = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}
_WORD_VALUES = {"yes": 1.0, "true": 1.0, "no": 0.0, "false": 0.0}

FRAME_COLUMNS = [
    "log",
    "task",
    "model",
    "sample_id",
    "question_id",
    "epoch",
    "key",
    "value",
    "scorer",
    "variant",
    "missing",
]

LogRef = str | Path | EvalLog

CLUSTER_FIELDS = ("question_id", "scenario_id")  # metadata naming a sample's question, in order


class ScoreFrameError(ValueError):
    """A log cannot be turned into a score frame (unknown scorer, no samples, unreadable)."""


def score_to_float(value: Any) -> tuple[float, str | None]:
    """A logged score value as a float, or NaN with the reason it is missing.

    Unlike Inspect's `value_to_float`, which warns and returns 0 for anything it cannot read,
    an unreadable value here is missing: averaging it in as 0 would bias every mean down.
    """
    if value is None:
        return math.nan, "no value (None)"
    if isinstance(value, bool):
        return float(value), None
    if isinstance(value, int | float):
        number = float(value)
        return (number, None) if not math.isnan(number) else (math.nan, "NaN (not graded)")
    if isinstance(value, str):
        text = value.strip()
        if text in _LETTER_VALUES:
            return _LETTER_VALUES[text], None
        if text.lower() in _WORD_VALUES:
            return _WORD_VALUES[text.lower()], None
        try:
            number = float(text)
        except ValueError:
            return math.nan, f"unreadable value {value!r}"
        return (
            (number, None) if math.isfinite(number) else (math.nan, f"unreadable value {value!r}")
        )
    return math.nan, f"unsupported value type {type(value).__name__}"


def expand_log_paths(logs: LogRef | Sequence[LogRef]) -> list[LogRef]:
    """Paths, directories (searched recursively for Inspect logs) and EvalLogs, in given order."""
    if isinstance(logs, str | Path | EvalLog):
        logs = [logs]
    expanded: list[LogRef] = []
    for ref in logs:
        if isinstance(ref, EvalLog):
            expanded.append(ref)
            continue
        path = Path(ref)
        if path.is_dir():
            found = sorted(
                _uri_to_path(info.name) for info in list_eval_logs(str(path), recursive=True)
            )
            if not found:
                raise ScoreFrameError(f"no Inspect logs (.eval/.json) under {path}")
            expanded.extend(found)
        elif path.is_file():
            expanded.append(path)
        else:
            raise ScoreFrameError(f"log not found: {path}")
    return expanded


def _uri_to_path(name: str) -> Path:
    return Path(name[len("file://") :]) if name.startswith("file://") else Path(name)


def load_log(ref: LogRef) -> EvalLog:
    """Read a whole log (with samples) unless an EvalLog was given."""
    if isinstance(ref, EvalLog):
        return ref
    try:
        return read_eval_log(str(ref))
    except Exception as ex:
        raise ScoreFrameError(f"cannot read Inspect log {ref}: {ex}") from ex


def log_location(log: EvalLog, ref: LogRef) -> str:
    if not isinstance(ref, EvalLog):
        return str(Path(ref))
    location = log.location or ""
    return str(_uri_to_path(location)) if location else f"<{log.eval.task}:{log.eval.run_id}>"


def primary_scorer(log: EvalLog) -> str | None:
    """The scorer a log reports first (the task's first scorer), or the first seen on a sample."""
    if log.results is not None and log.results.scores:
        return log.results.scores[0].scorer
    for sample in log.samples or []:
        if sample.scores:
            return next(iter(sample.scores))
    return None


def _scorers_in(log: EvalLog) -> list[str]:
    names: dict[str, None] = {}
    for sample in log.samples or []:
        for name in sample.scores or {}:
            names[name] = None
    return list(names)


def cluster_id(metadata: Mapping[str, Any], sample_id: str) -> str:
    """The question a sample belongs to: metadata `question_id`, else TAC's `scenario_id` (its
    control variants are one scenario, as TAC's own metrics cluster them), else the sample id."""
    for field in CLUSTER_FIELDS:
        if metadata.get(field) not in (None, ""):
            return str(metadata[field])
    return sample_id


def _variant(metadata: Mapping[str, Any]) -> str:
    """Canonical text of a sample's variable set, so pairing can check it, not assume it."""
    variables = metadata.get("variables")
    if not variables:
        return ""
    try:
        return json.dumps(variables, sort_keys=True, ensure_ascii=False, default=str)
    except TypeError:
        return str(variables)


def _grade_reasons(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Why each dimension is missing, from the rubric scorer's `grades` metadata.

    The score dict only holds NaN; the grades say "unparseable: ..." or "grader error: ...",
    which is what a reader needs to fix the judge. `overall` gets the first reason seen.
    """
    reasons: dict[str, str] = {}
    for grade in metadata.get("grades") or []:
        if isinstance(grade, Mapping) and grade.get("value") is None and grade.get("missing"):
            reason = str(grade["missing"]).split(":", 1)[0].strip() or "missing"
            reasons.setdefault(str(grade.get("dimension")), reason)
    if reasons:
        reasons[OVERALL_KEY] = next(iter(reasons.values()))
    return reasons


class _KeyLayout:
    """Which keys a scorer writes, learnt from the samples it did score in one log.

    WHY: an errored sample has no score at all, so its rows must be inferred. Inventing an
    `overall` key for a scorer that never writes one (loglik acc/acc_norm, behaviour choice
    matching/not_matching/other, TAC outcomes, StrongREJECT score/refused) would hide the loss:
    the real keys would show no missing value and comparisons would drop the pair silently.
    """

    def __init__(self) -> None:
        self.scalar = False
        self.scored = 0
        self.seen: dict[str, int] = {}  # key -> scored samples carrying it, in first-seen order
        self.by_sample: dict[str, list[str]] = {}  # sample id -> its keys in the epochs scored

    def add(self, sample_id: str, value: Any) -> None:
        self.scored += 1
        keys = [str(k) for k in value] if isinstance(value, Mapping) else [OVERALL_KEY]
        self.scalar = self.scalar or not isinstance(value, Mapping)
        if isinstance(value, Mapping):
            for key in keys:
                self.seen[key] = self.seen.get(key, 0) + 1
        known = self.by_sample.setdefault(sample_id, [])
        known.extend(k for k in keys if k not in known)

    def keys_for(self, sample_id: str, metadata: Mapping[str, Any]) -> list[str]:
        """Keys an unscored sample (one epoch) should have had, best evidence first: the keys
        the same sample got in its other epochs; else those every scored sample has (overall,
        missing_rate, outcome indicators...), where for a rubric sample (metadata `dimensions`)
        its own tagged dimensions replace the dimensions other questions happen to share."""
        if sample_id in self.by_sample:
            return list(self.by_sample[sample_id])
        tagged = metadata.get("dimensions")
        dims = [str(d) for d in tagged or []]
        if self.scored == 0:  # nothing scored in this log: overall + tags is all we can say
            return list(dict.fromkeys([OVERALL_KEY, *dims]))
        keys = [OVERALL_KEY] if self.scalar else []
        universal = [k for k, n in self.seen.items() if n == self.scored]
        if tagged is not None:
            dimension_like = set(dimension_keys(dict.fromkeys(universal)))
            keys += [k for k in universal if k not in dimension_like] + dims
        else:
            keys += universal
        return list(dict.fromkeys(keys))


def _key_layouts(log: EvalLog) -> dict[str, _KeyLayout]:
    layouts: dict[str, _KeyLayout] = {}
    for sample in log.samples or []:
        for name, score in (sample.scores or {}).items():
            layouts.setdefault(name, _KeyLayout()).add(str(sample.id), score.value)
    return layouts


def _sample_rows(
    sample: EvalSample, scorer: str, layout: _KeyLayout | None = None
) -> Iterable[tuple[str, float, str | None]]:
    """(key, value, missing reason) for one sample and epoch."""
    score = (sample.scores or {}).get(scorer)
    if score is None:
        reason = f"sample error: {sample.error.message}" if sample.error else "no score"
        for key in (layout or _KeyLayout()).keys_for(str(sample.id), sample.metadata or {}):
            yield key, math.nan, reason
        return
    value = score.value
    if isinstance(value, Mapping):
        reasons = _grade_reasons(score.metadata or {})
        for key, item in value.items():
            number, reason = score_to_float(item)
            if reason is not None:
                reason = reasons.get(str(key), reason)
            yield str(key), number, reason
    elif isinstance(value, list):
        yield OVERALL_KEY, math.nan, "list-valued score is not supported"
    else:
        number, reason = score_to_float(value)
        yield OVERALL_KEY, number, reason


def score_frame(logs: LogRef | Sequence[LogRef], scorer: str | None = None) -> pd.DataFrame:
    """One row per (log, sample, epoch, key) of the chosen scorer's values.

    Columns: log, task, model, sample_id, question_id, epoch, key, value (float, NaN if
    missing), plus scorer, variant (canonical JSON of metadata `variables`, "" if none) and
    missing (why value is NaN, else None). A scalar score (a choice task's "C"/"I" or a float)
    becomes key `overall`. `question_id` is the sample's metadata `question_id`, else its
    `scenario_id` (TAC), else its id: the cluster key every statistic uses.

    `scorer=None` takes each log's primary scorer; naming a scorer a log lacks is an error.
    """
    rows: list[tuple[Any, ...]] = []
    for ref in expand_log_paths(logs):
        log = load_log(ref)
        location = log_location(log, ref)
        if not log.samples:
            raise ScoreFrameError(f"log {location} has no samples (status {log.status})")
        chosen = scorer or primary_scorer(log)
        available = _scorers_in(log)
        if chosen is None:
            # Not one sample was scored: keep the samples as missing so the loss is visible.
            chosen = "<none>"
        elif scorer is not None and scorer not in available:
            raise ScoreFrameError(
                f"scorer {scorer!r} not in log {location}; it has {available or 'no scores'}"
            )
        task, model = log.eval.task, log.eval.model
        layout = _key_layouts(log).get(chosen)
        for sample in log.samples:
            metadata = sample.metadata or {}
            sample_id = str(sample.id)
            question_id = cluster_id(metadata, sample_id)
            variant = _variant(metadata)
            for key, value, missing in _sample_rows(sample, chosen, layout):
                rows.append(
                    (
                        location,
                        task,
                        model,
                        sample_id,
                        question_id,
                        int(sample.epoch),
                        key,
                        value,
                        chosen,
                        variant,
                        missing,
                    )
                )
    frame = pd.DataFrame.from_records(rows, columns=FRAME_COLUMNS)
    frame["value"] = frame["value"].astype(float)
    frame["epoch"] = frame["epoch"].astype(int)
    return frame


def missing_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values per task, model and key, with their reasons: for every report."""
    grouped = frame.assign(is_missing=frame["value"].isna()).groupby(
        ["task", "model", "key"], sort=False
    )
    out = grouped.agg(n=("value", "size"), n_missing=("is_missing", "sum")).reset_index()
    reasons = (
        frame[frame["value"].isna()]
        .groupby(["task", "model", "key"], sort=False)["missing"]
        .agg(lambda s: dict(s.fillna("unknown").value_counts()))
        .rename("reasons")
        .reset_index()
    )
    return out.merge(reasons, on=["task", "model", "key"], how="left")
