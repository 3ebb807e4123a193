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

What a frame is built from (the logs' sample summaries, never their messages, cached per file)
is `caml_evals.stats.reader`'s job; this module only turns those records into rows.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from inspect_ai.log import EvalLog, list_eval_logs

from caml_evals.scoring.grades import MISSING_RATE_KEY, OVERALL_KEY, dimension_keys

from .reader import (
    LogScores,
    SampleRecord,
    ScoreFrameError,
    UnreadableLogError,
    read_log_scores,
    score_to_float,
)

__all__ = [
    "CLUSTER_BY",
    "MISSING_RATE_KEY",
    "OVERALL_KEY",
    "ScoreFrameError",
    "UnreadableLogError",
    "missing_counts",
    "score_frame",
    "score_to_float",
]

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

CATEGORICAL_COLUMNS = (
    "log",
    "task",
    "model",
    "sample_id",
    "question_id",
    "key",
    "scorer",
    "variant",
)

LogRef = str | Path | EvalLog
ClusterBy = Literal["question", "source"]
CLUSTER_BY: tuple[str, ...] = ("question", "source")

CLUSTER_FIELDS = ("question_id", "scenario_id")  # metadata naming a sample's question, in order
SOURCE_FIELD = "source_id"  # metadata naming the source question a translation comes from
REASON_NOT_READ = "missing (reason not read)"


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
            raise UnreadableLogError(f"log not found: {path}")
    return expanded


def _uri_to_path(name: str) -> Path:
    return Path(name[len("file://") :]) if name.startswith("file://") else Path(name)


def log_location(log: EvalLog | None, ref: LogRef) -> str:
    if not isinstance(ref, EvalLog):
        return str(Path(ref))
    location = ref.location or ""
    return str(_uri_to_path(location)) if location else f"<{ref.eval.task}:{ref.eval.run_id}>"


def primary_scorer(log: EvalLog | LogScores) -> str | None:
    """The scorer a log reports first (the task's first scorer), or the first seen on a sample."""
    if isinstance(log, LogScores):
        if log.results_scorer is not None:
            return log.results_scorer
        return next((name for s in log.samples for name in s.scores), None)
    if log.results is not None and log.results.scores:
        return log.results.scores[0].scorer
    for sample in log.samples or []:
        if sample.scores:
            return next(iter(sample.scores))
    return None


def _scorers_in(log: LogScores) -> list[str]:
    names: dict[str, None] = {}
    for sample in log.samples:
        for name in sample.scores:
            names[name] = None
    return list(names)


def cluster_id(metadata: Mapping[str, Any], sample_id: str) -> str:
    """The question a sample belongs to: metadata `question_id`, else TAC's `scenario_id` (its
    control variants are one scenario, as TAC's own metrics cluster them), else the sample id."""
    for field in CLUSTER_FIELDS:
        if metadata.get(field) not in (None, ""):
            return str(metadata[field])
    return sample_id


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


def _key_layouts(log: LogScores) -> dict[str, _KeyLayout]:
    layouts: dict[str, _KeyLayout] = {}
    for sample in log.samples:
        sample_id = str(sample.id)
        for name, score in sample.scores.items():
            layouts.setdefault(name, _KeyLayout()).add(sample_id, score.value)
    return layouts


def _sample_rows(
    sample: SampleRecord, scorer: str, layout: _KeyLayout | None = None
) -> Iterable[tuple[str, float, str | None]]:
    """(key, value, missing reason) for one sample and epoch."""
    score = sample.scores.get(scorer)
    if score is None:
        reason = f"sample error: {sample.error}" if sample.error else "no score"
        metadata = {} if sample.dimensions is None else {"dimensions": sample.dimensions}
        for key in (layout or _KeyLayout()).keys_for(str(sample.id), metadata):
            yield key, math.nan, reason
        return
    value = score.value
    if isinstance(value, Mapping):
        reasons = score.reasons
        for key, item in value.items():
            number, reason = score_to_float(item)
            if reason is not None:
                reason = REASON_NOT_READ if reasons is None else reasons.get(str(key), reason)
            yield str(key), number, reason
    elif isinstance(value, list):
        yield OVERALL_KEY, math.nan, "list-valued score is not supported"
    else:
        number, reason = score_to_float(value)
        yield OVERALL_KEY, number, reason


def _clusters(log: LogScores, location: str, cluster_by: str) -> list[str]:
    """Each sample's cluster id: its question (default) or its source question."""
    if cluster_by == "question":
        return [cluster_id(s.ids, str(s.id)) for s in log.samples]
    if cluster_by != "source":
        raise ScoreFrameError(f"cluster_by must be one of {list(CLUSTER_BY)}, not {cluster_by!r}")
    lacking = [s for s in log.samples if SOURCE_FIELD not in s.ids]
    if lacking:
        raise ScoreFrameError(
            f"cluster_by='source' needs sample metadata {SOURCE_FIELD!r}, but {len(lacking)} of "
            f"{len(log.samples)} samples of log {location} lack it (e.g. sample "
            f"{lacking[0].id!r}, epoch {lacking[0].epoch}); cluster by question instead"
        )
    return [s.ids[SOURCE_FIELD] for s in log.samples]


class _Column:
    """A categorical column built row by row: a code per row, each distinct value once.

    WHY: a long frame repeats a handful of logs, models and keys and a few thousand sample and
    question ids over hundreds of thousands of rows; as Python lists and then Arrow strings
    they cost ~50x what int codes do (issue 16: 5,000 questions x 5 epochs x 2 logs).
    Categories are sorted, so sorting and `groupby(sort=True)` order rows as the strings would.
    """

    __slots__ = ("codes", "index")

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.codes = array("i")

    def code(self, value: str) -> int:
        return self.index.setdefault(value, len(self.index))

    def categorical(self) -> pd.Categorical:
        values = list(self.index)  # in first-seen order, as the codes number them
        codes = np.frombuffer(self.codes, dtype=np.int32)
        return pd.Categorical.from_codes(codes, categories=values).reorder_categories(
            sorted(values)
        )


def score_frame(
    logs: LogRef | Sequence[LogRef],
    scorer: str | None = None,
    *,
    cluster_by: ClusterBy = "question",
    reasons: bool = True,
) -> pd.DataFrame:
    """One row per (log, sample, epoch, key) of the chosen scorer's values.

    Columns: log, task, model, sample_id, question_id, epoch, key, value (float, NaN if
    missing), plus scorer, variant (canonical JSON of metadata `variables`, "" if none) and
    missing (why value is NaN, else None). A scalar score (a choice task's "C"/"I" or a float)
    becomes key `overall`. `question_id` is the cluster key every statistic uses: the sample's
    metadata `question_id`, else its `scenario_id` (TAC), else its id; with
    `cluster_by="source"` its metadata `source_id` (translations of one source question are
    one cluster; a log with a sample that lacks it is an error naming the log).

    The text columns (all but epoch, value and missing) are pandas categoricals with sorted
    categories: a frame of 300,000 rows is ~10 MB, not ~100 (`.astype(str)` gives strings).

    Logs are read from their sample summaries (`caml_evals.stats.reader`), cached per file;
    an EvalLog in memory is read from its samples. `reasons=False` leaves the reason of a
    missing grade unread when only the whole sample has it ("missing (reason not read)"):
    counts and values are the same. `scorer=None` takes each log's primary scorer; naming a
    scorer a log lacks is an error.
    """
    text = {name: _Column() for name in FRAME_COLUMNS if name in CATEGORICAL_COLUMNS}
    c_sample, c_question, c_key, c_variant = (
        text[n] for n in ("sample_id", "question_id", "key", "variant")
    )
    epochs, values, missing = array("q"), array("d"), []
    for ref in expand_log_paths(logs):
        log = read_log_scores(ref, reasons=reasons)
        location = log_location(None, ref)
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
        layout = _key_layouts(log).get(chosen)
        clusters = _clusters(log, location, cluster_by)
        start = len(values)
        key_code = c_key.code
        for sample, question_id in zip(log.samples, clusters):
            sample_id = str(sample.id)
            codes = (c_sample.code(sample_id), c_question.code(question_id))
            variant = c_variant.code(sample.variant)
            for key, value, why in _sample_rows(sample, chosen, layout):
                c_sample.codes.append(codes[0])
                c_question.codes.append(codes[1])
                c_key.codes.append(key_code(key))
                c_variant.codes.append(variant)
                epochs.append(sample.epoch)
                values.append(value)
                missing.append(why)
        n = len(values) - start
        constant = {"log": location, "task": log.task, "model": log.model, "scorer": chosen}
        for name, value in constant.items() if n else ():  # no category without a row
            text[name].codes.extend(array("i", [text[name].code(value)]) * n)
    if not values:
        # an empty frame keeps the object columns a row-less `from_records` gives
        frame = pd.DataFrame.from_records([], columns=FRAME_COLUMNS)
        frame["value"] = frame["value"].astype(float)
        frame["epoch"] = frame["epoch"].astype(int)
        return frame
    columns: dict[str, Any] = {name: column.categorical() for name, column in text.items()}
    columns |= {
        "epoch": np.frombuffer(epochs, dtype=np.int64).astype(int),
        "value": np.frombuffer(values, dtype=np.float64).copy(),
        "missing": pd.array(missing, dtype=object),
    }
    return pd.DataFrame({name: columns[name] for name in FRAME_COLUMNS})


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
