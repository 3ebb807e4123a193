"""The one score reader: what a score frame needs from an Inspect log, and nothing more.

WHY: reading a log whole (`read_eval_log`) parses every sample's messages, events and judge
prompts, though statistics use only ids, epochs, a few metadata fields, score values and error
messages. Inspect keeps a summary of every sample beside it (`read_eval_log_sample_summaries`):
scores with their values, metadata, the error message. Reading those is several times faster and
lighter, and it is what every reader of scores (compare, leaderboard, summary, suite, training
results: all through `score_frame`) goes through.

What a summary lacks, and how it is made up for. Inspect thins summary metadata: a top-level
string is shortened to 1k characters with its whitespace collapsed, and any other value whose
JSON exceeds 1k is replaced by a "Key removed from summary" note. So:
- a sample whose frame metadata (`FRAME_METADATA`) was removed, or is a string that may have
  been changed (it holds whitespace or is near the limit), is read whole;
- a rubric score keeps its grades (why each dimension is missing) in score metadata, which is
  nearly always over 1k; the reasons are read from the whole sample only for samples with a
  missing value, and only when asked (`reasons=True`; `compare` reports counts, not reasons).
Those whole-sample reads go through `read_eval_log_samples_by_id` (one zip directory parse,
messages and events excluded) and are counted in `LogScores.full_reads`.

Memory: records are shared, not copied. Within one log a question's ids, its dimension list,
every score key and most score dicts and grade counts are the same objects in every epoch and
sample that has them (`_Shared`), so a record costs a few hundred bytes, not the 4 KB of the
decoded summary; the summaries are decoded one at a time in small chunks (a zstd member is
decompressed as far as each read asks, and its ratio makes a 1 MiB read ~90 MiB of text).

Cache: a log file's `LogScores` is kept per (real path, size, mtime) in this process, and on
disk under `$CAML_EVALS_CACHE/score-frames/` as JSON (written to a temporary file and renamed,
so a reader never sees half a file; an unreadable or stale entry is ignored and rewritten).
`CAML_EVALS_FRAME_CACHE=off` turns the disk cache off. An `EvalLog` given in memory is read from
its samples (nothing to cache: it is already parsed).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspect_ai.log import (
    EvalLog,
    read_eval_log,
    read_eval_log_sample_summaries,
    read_eval_log_samples_by_id,
)

from caml_evals.errors import LogReadError, UserError
from caml_evals.scoring.grades import EXPECTED_COUNT_KEY, MISSING_COUNT_KEY, OVERALL_KEY
from caml_evals.scoring.judge_checks import ANSWER_KEY

log = logging.getLogger(__name__)

# Sample metadata the score frame uses: the cluster ids, the variable set, the tagged dimensions.
FRAME_METADATA = ("question_id", "scenario_id", "source_id", "variables", "dimensions")
CACHE_ENV = "CAML_EVALS_FRAME_CACHE"  # "off" / "0" / "no": no disk cache
CACHE_VERSION = 3  # bump when what a record holds changes: old entries are then ignored
MEMORY_ENTRIES = 32  # logs kept in this process
_THINNED_LIMIT = 1000  # a summary string this long may have been cut
_REMOVED = "Key removed from summary"
_SUMMARIES = "summaries.json"  # the consolidated summaries of a finished .eval log
# Fields a whole-sample read can skip (big, and not used by the frame).
_SKIP_FIELDS = {"messages", "events", "output", "attachments", "store", "events_data", "timelines"}


class ScoreFrameError(UserError, ValueError):
    """A log cannot be turned into a score frame (unknown scorer, no samples, bad option)."""


class UnreadableLogError(ScoreFrameError, LogReadError):
    """A log file is missing, truncated or corrupt (the message names the file)."""


@dataclass(slots=True)
class ScoreRecord:
    """One scorer's score of one sample: its value and, for dict values with missing items,
    why each key is missing (`reasons`, from the rubric scorer's grades; None = not read),
    the rubric scorer's grade counts `(missing, expected)` when it records them (the summary's
    missing share is a ratio of these, not a mean of per-sample rates), and its answer record
    `(tokens or NaN, words, truncated share)` (`caml_evals.scoring.judge_checks`; None when the
    scorer keeps none). Records are shared between samples: never change one."""

    value: Any
    reasons: dict[str, str] | None = None
    counts: tuple[float, float] | None = None
    answer: tuple[float, ...] | None = None  # () = UNREADABLE_ANSWER


@dataclass(slots=True)
class SampleRecord:
    """What the frame needs of one sample x epoch."""

    id: Any  # as logged (int or str): whole-sample reads need it
    epoch: int
    ids: dict[str, str]  # question_id / scenario_id / source_id present in metadata, as text
    variant: str  # canonical JSON of metadata `variables`, "" if none
    dimensions: tuple[str, ...] | None  # metadata `dimensions` (None: not a rubric sample)
    scores: dict[str, ScoreRecord]
    error: str | None  # the error message of a sample that failed


@dataclass
class LogScores:
    """A log's header facts and its samples' score records, in Inspect's sample order."""

    location: str
    task: str
    model: str
    status: str
    results_scorer: str | None  # the scorer the log reports first
    samples: list[SampleRecord]
    full_reads: int = 0  # samples read whole because their summary lacked a field
    pending: list[int] = field(default_factory=list)  # samples whose missing reasons are unread


# ------------------------------------------------------------------ records from either source


def variant_text(metadata: Mapping[str, Any]) -> str:
    """Canonical text of a sample's variable set, so pairing can check it, not assume it."""
    variables = metadata.get("variables")
    if not variables:
        return ""
    try:
        return json.dumps(variables, sort_keys=True, ensure_ascii=False, default=str)
    except TypeError:
        return str(variables)


def grade_reasons(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """Why each dimension is missing, from the rubric scorer's `grades` metadata.

    The score dict only holds NaN; the grades say "unparseable: ..." or "grader error: ...",
    which is what a reader needs to fix the judge. `overall` gets the first reason seen.
    """
    reasons: dict[str, str] = {}
    grades = (metadata or {}).get("grades") or []
    for grade in grades if not isinstance(grades, str) else []:
        if isinstance(grade, Mapping) and grade.get("value") is None and grade.get("missing"):
            reason = str(grade["missing"]).split(":", 1)[0].strip() or "missing"
            reasons.setdefault(str(grade.get("dimension")), reason)
    if reasons:
        reasons[OVERALL_KEY] = next(iter(reasons.values()))
    return reasons


def grade_counts(metadata: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """(missing grades, expected grades) from a rubric score's metadata; None when not recorded
    (not a rubric scorer, an older log). Small numbers: a summary keeps them whole."""
    meta = metadata or {}
    missing, expected = meta.get(MISSING_COUNT_KEY), meta.get(EXPECTED_COUNT_KEY)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (missing, expected)):
        return None
    return float(missing), float(expected)


UNREADABLE_ANSWER: tuple[float, ...] = ()  # an answer record whose fields are not numbers


def answer_lengths(metadata: Mapping[str, Any] | None) -> tuple[float, ...] | None:
    """(tokens or NaN, words, truncated share) from a rubric score's `answer` record; None when
    the score has none (another scorer, an older log); `UNREADABLE_ANSWER` when it is not
    numbers (a hand-edited or foreign log: the length report leaves it out and says how many).
    A reduced record adds `truncated` over `answers` epochs, hence a share."""
    record = (metadata or {}).get(ANSWER_KEY)
    if not isinstance(record, Mapping):
        return None
    tokens, words = record.get("tokens"), record.get("words") or 0
    truncated, answers = record.get("truncated") or 0, record.get("answers", 1) or 1
    truncated = int(truncated) if isinstance(truncated, bool) else truncated  # a flag is a count
    numbers = [words, truncated, answers] + ([] if tokens is None else [tokens])
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in numbers):
        return UNREADABLE_ANSWER
    return (
        math.nan if tokens is None else float(tokens),
        float(words),
        float(truncated) / max(int(answers), 1),
    )


_LETTER_VALUES = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}
_WORD_VALUES = {"yes": 1.0, "true": 1.0, "no": 0.0, "false": 0.0}


def score_to_float(value: Any) -> tuple[float, str | None]:
    """A logged score value as a float, or NaN with the reason it is missing.

    Unlike Inspect's `value_to_float`, which warns and returns 0 for anything it cannot read,
    an unreadable value here is missing: averaging it in as 0 would bias every mean down.
    Letters map as Inspect's accuracy maps them (C=1, I=0, P=0.5, N=0), so our means equal
    the means Inspect prints for choice tasks.
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


def _has_missing_item(value: Any) -> bool:
    """A dict score with an item that is not a finite number (its reason may be in grades)."""
    return isinstance(value, Mapping) and any(score_to_float(v)[1] for v in value.values())


def _removed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(_REMOVED)


class _Shared:
    """One object for every equal value met while reading one log (see "Memory" above).

    Texts, numbers and tuples are shared by equality (one table per type, so 1, 1.0 and True
    stay apart); dicts by their items; NaN (never equal to itself) is one object. The tables
    live as long as the read, so they cost nothing after.
    """

    __slots__ = ("_by_type", "_keyed")

    def __init__(self) -> None:
        self._by_type: dict[type, dict[Any, Any]] = {str: {}, int: {}, float: {}, tuple: {}}
        self._keyed: dict[Any, Any] = {}

    def value(self, value: Any) -> Any:
        kind = type(value)
        table = self._by_type.get(kind)
        if table is not None:
            if kind is float and math.isnan(value):
                return math.nan  # one object
            try:
                return table.setdefault(value, value)
            except TypeError:  # a tuple holding a list
                return value
        if kind is dict:  # keyed by its items as given: equal to its shared items
            share = self.value
            return self.keyed(
                ("dict", tuple(value.items())),
                lambda: dict(zip(map(share, map(str, value)), map(share, value.values()))),
            )
        return value  # None, bools, lists: rare in records

    def keyed(self, key: Any, make: Any) -> Any:
        """The object first made for `key` (hashable; by equality), else `make()`."""
        try:
            found = self._keyed.get(key)
        except TypeError:  # an unhashable part (a list value): not shared
            return make()
        if found is None:
            found = self._keyed[key] = make()
        return found


ScoreParts = tuple[Any, "dict[str, str] | None", "tuple[float, float] | None", Any]


def _record(
    sample: Any, metadata: Mapping[str, Any], error: str | None, shared: _Shared | None = None
) -> SampleRecord:
    """A record of a whole sample or a summary; a summary whose grades were removed leaves
    the reasons of its missing values unread (None)."""
    parts: dict[str, ScoreParts] = {}
    for name, score in (sample.scores or {}).items():
        meta = score.metadata
        why = None
        if _has_missing_item(score.value) and not _removed((meta or {}).get("grades")):
            why = grade_reasons(meta)
        parts[str(name)] = (score.value, why, grade_counts(meta), answer_lengths(meta))
    dims = metadata.get("dimensions")
    return _assemble(
        shared or _Shared(),
        sample.id,
        int(sample.epoch),
        {k: str(metadata[k]) for k in FRAME_METADATA[:3] if metadata.get(k) not in (None, "")},
        variant_text(metadata),
        None if dims is None or isinstance(dims, str) else [str(d) for d in dims],
        parts,
        error,
    )


def _assemble(
    shared: _Shared,
    sample_id: Any,
    epoch: int,
    ids: dict[str, str],
    variant: str,
    dimensions: list[str] | None,
    parts: Mapping[str, ScoreParts],
    error: str | None,
) -> SampleRecord:
    """A record whose parts equal to ones `shared` has seen are those objects (from a log or
    from the disk cache: one builder)."""
    scores: dict[str, ScoreRecord] = {}
    for name, (value, why, counts, answer) in parts.items():
        # tuples, not JSON's lists, for the counts and answer; shared parts are alive in the
        # table, so their ids name them
        shared_parts = (
            shared.value(value),
            shared.value(why),
            shared.value(None if counts is None else tuple(float(c) for c in counts)),
            shared.value(None if answer is None else tuple(float(x) for x in answer)),
        )
        scores[shared.value(name)] = shared.keyed(
            ("score", *map(id, shared_parts)),
            lambda: ScoreRecord(*shared_parts),  # noqa: B023  (called at once)
        )
    return SampleRecord(
        id=shared.value(sample_id),
        epoch=epoch,
        ids=shared.value(ids),
        variant=shared.value(variant),
        dimensions=None if dimensions is None else shared.value(tuple(dimensions)),
        scores=shared.keyed(("scores", *((n, id(r)) for n, r in scores.items())), lambda: scores),
        error=shared.value(error),
    )


def _summary_is_short(value: Any) -> bool:
    """False when a thinned summary value may differ from the sample's own."""
    if isinstance(value, str):
        return not (
            value.startswith(_REMOVED)
            or len(value) >= _THINNED_LIMIT
            or any(c.isspace() for c in value)
        )
    return True


def _sort_key(record: SampleRecord) -> tuple[int, str]:
    # Inspect's own order for a log read whole (epoch, then id with numbers zero-padded)
    return record.epoch, record.id if isinstance(record.id, str) else str(record.id).zfill(20)


def from_eval_log(log_obj: EvalLog, location: str) -> LogScores:
    """Records of an EvalLog already in memory (its samples are whole: nothing is re-read)."""
    shared = _Shared()
    samples = [
        _record(s, s.metadata or {}, s.error.message if s.error else None, shared)
        for s in log_obj.samples or []
    ]
    return _scores_of(log_obj, location, samples)


def _scores_of(header: EvalLog, location: str, samples: list[SampleRecord]) -> LogScores:
    results = header.results
    return LogScores(
        location=location,
        task=header.eval.task,
        model=header.eval.model,
        status=str(header.status),
        results_scorer=results.scores[0].scorer if results is not None and results.scores else None,
        samples=samples,
    )


class _Summary:
    """The fields of one sample summary the records use, from JSON or from Inspect's model."""

    __slots__ = ("epoch", "error", "id", "metadata", "scores")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.id = data["id"]
        self.epoch = data["epoch"]
        self.metadata = data.get("metadata") or {}
        self.scores = {
            name: _Score(score.get("value"), score.get("metadata"))
            for name, score in (data.get("scores") or {}).items()
        }
        self.error = data.get("error")


@dataclass(slots=True)
class _Score:
    value: Any
    metadata: dict[str, Any] | None


def _summary_dicts(path: Path) -> Iterator[Mapping[str, Any]]:
    """Sample summaries of a log as JSON objects, one at a time.

    WHY not `read_eval_log_sample_summaries` for .eval files: it parses the whole summaries
    file, then validates every summary and thins its texts again (they were thinned when
    written), which costs 4-5x the parse and holds every summary twice. The consolidated
    `summaries.json` member of a finished .eval log is decoded here item by item from the
    zip stream instead, holding one summary at a time; Inspect's own reader (the same data)
    serves every other case: .json logs, logs still running (summaries only in the journal).
    """
    if path.suffix != ".eval":
        yield from _validated_dicts(path)
        return
    with zipfile.ZipFile(path) as archive:
        if _SUMMARIES not in archive.namelist():
            yield from _validated_dicts(path)
            return
        with archive.open(_SUMMARIES) as stream:
            yield from _json_array_items(io.TextIOWrapper(stream, encoding="utf-8"))


def _validated_dicts(path: Path) -> Iterator[Mapping[str, Any]]:
    for summary in read_eval_log_sample_summaries(str(path)):
        yield {
            "id": summary.id,
            "epoch": summary.epoch,
            "metadata": summary.metadata,
            "scores": {
                n: {"value": sc.value, "metadata": sc.metadata}
                for n, sc in (summary.scores or {}).items()
            },
            "error": summary.error,
        }


def _json_array_items(text: io.TextIOBase, chunk: int = 1 << 16) -> Iterator[Any]:
    """The items of one JSON array read from a text stream in chunks (NaN allowed, as Inspect
    writes it); a truncated or malformed array is a `ValueError`.

    WHY small chunks: a zstd member of an .eval zip is decompressed as far as a read asks of
    the compressed bytes, so a 1 MiB read of a log that compresses 90x (repetitive summaries)
    holds ~90 MiB of text at once; 64 KiB keeps that a few MiB."""
    decoder = json.JSONDecoder()
    buffer, position, started = "", 0, False

    def token() -> str:
        """The next non-blank character (reading on as needed); "" at the end of the stream."""
        nonlocal buffer, position
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n":
                position += 1
            if position < len(buffer):
                return buffer[position]
            more = text.read(chunk)
            if not more:
                return ""
            buffer, position = more, 0

    while True:
        head = token()
        if not started:
            if head != "[":
                raise ValueError("summaries are not a JSON array")
            started, position = True, position + 1
            continue
        if head == "]":
            return
        if head == ",":
            position += 1
            continue
        if head == "":
            raise ValueError("summaries end before the array does (truncated log?)")
        while True:
            try:
                item, end = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError:
                item, end = None, -1
            if 0 <= end < len(buffer):  # an item followed by more text is complete
                break
            more = text.read(chunk)
            if not more:
                if end < 0:
                    raise ValueError("summaries end inside an item (truncated log?)")
                break
            buffer, position = buffer[position:] + more, 0
        yield item
        position = end


def _read_file(path: Path, reasons: bool) -> LogScores:
    name = str(path)
    records_by_key: dict[tuple[str, int], SampleRecord] = {}
    whole_keys: set[tuple[str, int]] = set()  # summaries that lack frame metadata
    shared = _Shared()
    try:
        header = read_eval_log(name, header_only=True)
        for data in _summary_dicts(path):
            summary = _Summary(data)
            metadata = summary.metadata
            key = (str(summary.id), int(summary.epoch))
            # the last summary of a (sample, epoch) is the current one, as Inspect reads it
            records_by_key[key] = _record(summary, metadata, summary.error, shared)
            if not all(_summary_is_short(metadata[k]) for k in FRAME_METADATA if k in metadata):
                whole_keys.add(key)
            else:
                whole_keys.discard(key)
    except UserError:
        raise
    except Exception as ex:  # zip/JSON/validation errors all mean the same to the user
        raise UnreadableLogError(f"cannot read Inspect log {path}: {_short(ex)}") from ex
    records = list(records_by_key.values())
    whole = [i for i, key in enumerate(records_by_key) if key in whole_keys]
    order = sorted(range(len(records)), key=lambda i: _sort_key(records[i]))
    records = [records[i] for i in order]
    position = {old: new for new, old in enumerate(order)}
    scores = _scores_of(header, name, records)
    scores.pending = [i for i, r in enumerate(records) if _needs_reasons(r)]
    _reread(
        path,
        scores,
        sorted({position[i] for i in whole} | set(scores.pending if reasons else ())),
        shared,
    )
    return scores


def _needs_reasons(record: SampleRecord) -> bool:
    return any(s.reasons is None and _has_missing_item(s.value) for s in record.scores.values())


def _reread(
    path: Path, scores: LogScores, indices: list[int], shared: _Shared | None = None
) -> None:
    """Replace records by ones made from the whole samples (metadata and grades complete)."""
    if not indices:
        return
    wanted = [(scores.samples[i].id, scores.samples[i].epoch) for i in indices]
    try:
        samples = read_eval_log_samples_by_id(str(path), wanted, exclude_fields=_SKIP_FIELDS)
    except Exception as ex:
        raise UnreadableLogError(f"cannot read samples of Inspect log {path}: {_short(ex)}") from ex
    shared = shared or _Shared()
    for i, sample in zip(indices, samples):
        scores.samples[i] = _record(
            sample, sample.metadata or {}, sample.error.message if sample.error else None, shared
        )
    scores.full_reads += len(indices)
    scores.pending = [i for i in scores.pending if _needs_reasons(scores.samples[i])]


def resolve_reasons(path: Path, scores: LogScores) -> None:
    """Read the missing reasons (the grades) of the samples that still lack them."""
    if scores.pending:
        _reread(path, scores, list(scores.pending))


def _short(ex: BaseException) -> str:
    text = str(ex).strip().splitlines()
    return f"{type(ex).__name__}: {text[0] if text else ''}".rstrip(": ")


# ------------------------------------------------------------------ caches


_memory: OrderedDict[tuple[str, int, int], LogScores] = OrderedDict()


def _file_key(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError as ex:
        raise UnreadableLogError(f"log not found: {path} ({ex.strerror})") from ex
    return os.path.realpath(path), stat.st_size, stat.st_mtime_ns


def _disk_cache_dir() -> Path | None:
    if os.environ.get(CACHE_ENV, "").strip().lower() in ("off", "0", "no", "false"):
        return None
    from caml_evals.models.embedded import cache_root

    return cache_root() / "score-frames"


def _disk_path(directory: Path, key: tuple[str, int, int]) -> Path:
    return directory / (hashlib.sha256(key[0].encode()).hexdigest()[:32] + ".jsonl")


def _inspect_version() -> str:
    from importlib.metadata import version

    return version("inspect_ai")


def _cache_lines(scores: LogScores, key: tuple[str, int, int]) -> Iterator[str]:
    """The cache entry as JSON lines: the header, then one sample per line (so a warm read
    holds one decoded sample at a time, as a cold one does)."""
    head = {
        "version": CACHE_VERSION,
        "inspect": _inspect_version(),
        "key": list(key),
        "task": scores.task,
        "model": scores.model,
        "status": scores.status,
        "results_scorer": scores.results_scorer,
        "full_reads": scores.full_reads,
        "pending": scores.pending,
        "n_samples": len(scores.samples),  # a file cut at a line end is not a smaller log
    }
    # no default=: a value JSON cannot hold exactly is not cached (TypeError), never coerced
    yield json.dumps(head, ensure_ascii=False)
    for s in scores.samples:
        scores_json = {n: [r.value, r.reasons, r.counts, r.answer] for n, r in s.scores.items()}
        row = [s.id, s.epoch, s.ids, s.variant, s.dimensions, scores_json, s.error]
        yield json.dumps(row, ensure_ascii=False)


def _from_lines(lines: Iterator[str], key: tuple[str, int, int], location: str) -> LogScores | None:
    data = json.loads(next(lines))
    if (
        data.get("version") != CACHE_VERSION
        or data.get("key") != list(key)
        or data.get("inspect") != _inspect_version()
    ):
        return None
    shared = _Shared()
    samples = []
    for line in lines:
        sid, epoch, ids, variant, dims, scores, error = json.loads(line)
        parts = {name: tuple(fields) for name, fields in scores.items()}
        samples.append(
            _assemble(shared, sid, int(epoch), ids, str(variant), dims, parts, error)  # type: ignore[arg-type]
        )
    if len(samples) != data["n_samples"]:
        raise ValueError(f"{len(samples)} of {data['n_samples']} samples")
    return LogScores(
        location=location,
        task=data["task"],
        model=data["model"],
        status=data["status"],
        results_scorer=data["results_scorer"],
        samples=samples,
        full_reads=int(data["full_reads"]),
        pending=[int(i) for i in data["pending"]],
    )


def _load_disk(key: tuple[str, int, int], location: str) -> LogScores | None:
    directory = _disk_cache_dir()
    if directory is None:
        return None
    path = _disk_path(directory, key)
    try:
        with path.open(encoding="utf-8") as lines:
            return _from_lines(iter(lines), key, location)
    except OSError:
        return None
    except Exception as ex:  # noqa: BLE001  (a corrupt entry is a cache miss, never an error)
        log.debug("ignoring unreadable score cache %s: %s", path, ex)
        return None


def _save_disk(key: tuple[str, int, int], scores: LogScores) -> None:
    directory = _disk_cache_dir()
    if directory is None:
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".jsonl")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                for line in _cache_lines(scores, key):
                    f.write(line + "\n")
            entry = _disk_path(directory, key)
            os.replace(tmp, entry)
            entry.with_suffix(".json").unlink(missing_ok=True)  # this log's entry of cache v2
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except (OSError, TypeError, ValueError) as ex:  # an unwritable cache costs speed only
        log.debug("score cache not written for %s: %s", key[0], ex)


def clear_cache() -> None:
    """Forget the logs read in this process (the disk cache is keyed by size and mtime)."""
    _memory.clear()


def read_log_scores(ref: str | Path | EvalLog, *, reasons: bool = True) -> LogScores:
    """A log's score records: from its sample summaries (cached), or an EvalLog's samples.

    `reasons=False` skips reading whole samples just to learn why a value is missing (those
    stay in `LogScores.pending`); everything else is identical. The records are shared with
    the cache: do not change them.
    """
    if isinstance(ref, EvalLog):
        return from_eval_log(ref, ref.location or "")
    path = Path(ref)
    key = _file_key(path)
    cached = _memory.get(key) or _load_disk(key, str(path))
    if cached is None:
        cached = _read_file(path, reasons)
        _save_disk(key, cached)
    elif reasons and cached.pending:
        resolve_reasons(path, cached)
        _save_disk(key, cached)
    _memory[key] = cached
    _memory.move_to_end(key)
    while len(_memory) > MEMORY_ENTRIES:
        _memory.popitem(last=False)
    return cached


__all__ = [
    "FRAME_METADATA",
    "LogScores",
    "SampleRecord",
    "ScoreFrameError",
    "ScoreRecord",
    "UnreadableLogError",
    "clear_cache",
    "grade_reasons",
    "read_log_scores",
    "score_to_float",
    "variant_text",
]
