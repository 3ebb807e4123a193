"""Corpus, instruction and SFT rows -> validated records that TRL's `SFTTrainer` tokenises.

What is ours: reading rows (local JSONL/parquet, a folder of them, or a pinned Hub split),
validating them with a reason per bad row (`hparams.on_bad_rows`: error, or skip and list them in
the run card), seeded nested subsets, and the hashes that key the grid's cache. What is TRL's:
tokenisation, chat-template rendering with the assistant mask, best-fit-decreasing packing and
padding-free batches. A `text` stage becomes a language-modelling dataset (`{"text": ...}`, every
token a target); `instruct`/`sft` stages become conversational datasets (`{"messages": [...]}`)
trained with `assistant_only_loss`.

After TRL has prepared the dataset, `exposure()` counts what the trainer will see (sequences,
tokens, loss-bearing tokens) from the prepared columns themselves, so the run card reports the
tokens actually trained, not an estimate.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caml_evals.data.source import read_text
from caml_evals.datasource import DataSourceError, load_hub_rows

from .config import DataSource, Replay, Stage

IGNORE_INDEX = -100
_ROLES = {"system", "user", "assistant"}


class DataError(DataSourceError):
    """Rows that cannot be used for training; the message lists them (row index and reason)."""


# ---------------------------------------------------------------------------- problems


@dataclass
class Problems:
    """Rows (and malformed lines) that were not used, with reasons: reported in the run card,
    never silently lost."""

    items: list[str] = field(default_factory=list)

    def add(self, index: int, row: Any, reason: str) -> None:
        rid = row.get("id", "") if isinstance(row, dict) else ""
        self.items.append(f"row {index}{f' (id {rid})' if rid else ''}: {reason}")

    def add_line(self, path: Path, lineno: int, reason: str) -> None:
        self.items.append(f"{path.name} line {lineno}: {reason}")

    def __len__(self) -> int:
        return len(self.items)

    def raise_or_keep(self, policy: str, what: str) -> None:
        if self.items and policy == "error":
            shown = "; ".join(self.items[:10])
            more = f" (+{len(self.items) - 10} more)" if len(self.items) > 10 else ""
            raise DataError(
                f"{len(self.items)} unusable {what} row(s): {shown}{more}. Fix them, or set "
                f"hparams.on_bad_rows: skip to train without them (listed in the run card)."
            )


# ---------------------------------------------------------------------------- loading rows


def load_rows(source: DataSource, problems: Problems | None = None) -> list[dict[str, Any]]:
    """All rows of a local JSONL/parquet file (or a folder of them) or of a pinned Hub dataset.

    A malformed JSONL line (broken JSON, not an object) is an error naming the file and line;
    given `problems` (the `on_bad_rows: skip` policy) it is recorded there and skipped instead.
    """
    if source.hub is not None:
        assert source.revision is not None
        return load_hub_rows(
            source.hub,
            source.config,
            source.split,
            source.revision,
            local_hint="download the split as JSONL/parquet and set `data: {path: ...}`",
        )
    assert source.path is not None
    rows: list[dict[str, Any]] = []
    for f in data_files(source.path):
        if f.suffix == ".parquet":
            rows.extend(_parquet_rows(f))
        elif f.suffix in {".jsonl", ".json"}:
            rows.extend(_jsonl_rows(f, problems))
        else:
            raise DataSourceError(f"{f}: unsupported file type (use .jsonl or .parquet)")
    return rows


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    import datasets

    try:
        ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
    except Exception as ex:  # noqa: BLE001 - pyarrow/datasets raise many types for a bad file
        raise DataSourceError(
            f"{path}: not a readable parquet file ({type(ex).__name__})"
        ) from None
    return [dict(r) for r in ds]


def _jsonl_rows(path: Path, problems: Problems | None) -> list[dict[str, Any]]:
    """One JSON object per line. The shared `load_jsonl_rows` has no skip mode, which the
    training policy needs; the decoding (UTF-8, BOM, folders) is the shared `read_text`."""
    rows: list[dict[str, Any]] = []
    bad = Problems()
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as ex:
            bad.add_line(path, lineno, f"not valid JSON ({ex.msg})")
            continue
        if not isinstance(row, dict):
            bad.add_line(path, lineno, f"expected a JSON object, got {type(row).__name__}")
            continue
        rows.append(row)
    if bad.items and problems is None:
        raise DataError(
            f"{path}: {len(bad)} malformed line(s): {'; '.join(bad.items[:10])}. Fix them, or "
            "set hparams.on_bad_rows: skip to train without them (listed in the run card)."
        )
    if problems is not None:
        problems.items.extend(bad.items)
    return rows


def data_files(path: Path) -> list[Path]:
    """The files `load_rows` reads from a path: the file itself, or every `*.jsonl`/`*.parquet`
    directly in a folder minus the generator's `*.rejected.jsonl` (kept for audit only)."""
    files = [path]
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.suffix in {".jsonl", ".parquet"} and not p.name.endswith(".rejected.jsonl")
        )
    if not files or not all(f.is_file() for f in files):
        raise DataSourceError(f"no JSONL/parquet data at {path}")
    return files


def file_sha256(path: Path) -> str:
    """Hash (names + bytes) of the data a path holds: a corpus's cache key.

    For a folder only the files `load_rows` reads count, so a manifest or rejects file that the
    generator rewrites (timestamps) does not change the key and force a retrain.
    """
    return files_sha256(data_files(path))


def files_sha256(files: Iterable[Path]) -> str:
    """Hash of the names and bytes of the given files, in the given order."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def rows_sha256(rows: Sequence[dict[str, Any]]) -> str:
    """Order-sensitive hash of exactly the rows trained on (after subsetting): the run card's
    data hash."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def sample_rows(rows: list[dict[str, Any]], n: int | None, seed: int) -> list[dict[str, Any]]:
    """A seeded subset of n rows. Nested by construction: the first 2,500 of the shuffled order
    are also the first 2,500 of the 5,000, so SFT sizes differ only by the added data."""
    if n is None:
        return rows
    if n > len(rows):
        raise DataError(f"asked for {n} samples but the dataset has only {len(rows)} rows")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [rows[i] for i in order[:n]]


def replay_count(n_rows: int, fraction: float) -> int:
    """Documents added to `n_rows` conversations so that they are `fraction` of the mix."""
    return round(n_rows * fraction / (1 - fraction))


def replay_rows(
    replay: Replay, n_rows: int, seed: int, problems: Problems | None = None
) -> list[dict[str, Any]]:
    """The documents replayed beside `n_rows` SFT rows: a seeded nested subset of the corpus
    (`sample_rows`, so the documents for n=8 are the first of those for n=16). Too few
    documents, or a fraction that rounds to none, is one error naming the numbers."""
    need = replay_count(n_rows, replay.fraction)
    where = replay.documents.describe()
    if need == 0:
        raise DataError(
            f"replay: fraction {replay.fraction} of {n_rows} SFT rows rounds to 0 documents; "
            "raise replay.fraction or the stage's n_samples"
        )
    rows = load_rows(replay.documents, problems)
    if need > len(rows):
        raise DataError(
            f"replay: fraction {replay.fraction} of {n_rows} SFT rows needs {need} documents "
            f"but {where} has only {len(rows)}; lower replay.fraction or n_samples"
        )
    return sample_rows(rows, need, seed)


# ---------------------------------------------------------------------------- row validation


def checked_messages(messages: Any, column: str) -> list[dict[str, str]]:
    """A non-empty list of {role, content} messages (extra keys dropped), else a ValueError
    naming the column and the message; shared by SFT rows, preference rows and RLAIF prompts."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"`{column}` must be a non-empty list")
    out = []
    for i, m in enumerate(messages):
        if (
            not isinstance(m, dict)
            or m.get("role") not in _ROLES
            or not isinstance(m.get("content"), str)
        ):
            raise ValueError(f"message {i}: needs role in {sorted(_ROLES)} and string content")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def to_messages(row: dict[str, Any]) -> list[dict[str, str]]:
    """A conversation from a `messages` row or a `prompt`/`response` row (optional `system`)."""
    if "messages" in row:
        out = checked_messages(row["messages"], "messages")
    elif "prompt" in row and "response" in row:
        if not isinstance(row["prompt"], str) or not isinstance(row["response"], str):
            raise ValueError("`prompt` and `response` must be strings")
        out = [
            {"role": "user", "content": row["prompt"]},
            {"role": "assistant", "content": row["response"]},
        ]
        if isinstance(row.get("system"), str) and row["system"]:
            out.insert(0, {"role": "system", "content": row["system"]})
    else:
        raise ValueError("expected a `messages` list or `prompt` and `response` columns")
    if not any(m["role"] == "assistant" and m["content"].strip() for m in out):
        raise ValueError("no non-empty assistant message to learn from")
    return out


def to_text(row: dict[str, Any]) -> str:
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("`text` must be a non-empty string")
    return text


@dataclass
class Records:
    """Validated rows in the shape TRL expects, and which input rows they came from."""

    records: list[dict[str, Any]]
    used_indices: list[int]
    problems: Problems

    @property
    def rows_used(self) -> int:
        return len(self.used_indices)


def to_records(
    rows: Sequence[Any], stage: Stage, on_bad_rows: str = "error", problems: Problems | None = None
) -> Records:
    """Validate rows for a stage: `{"text"}` records for documents, `{"messages"}` otherwise.

    Bad rows are collected with their reasons and raised (the default) or skipped and listed.
    """
    problems = problems if problems is not None else Problems()
    records: list[dict[str, Any]] = []
    used: list[int] = []
    for i, row in enumerate(rows):
        try:
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")  # noqa: TRY004 - reported as a bad row
            if stage == "text":
                records.append({"text": to_text(row)})
            else:
                records.append({"messages": to_messages(row)})
            used.append(i)
        except ValueError as ex:
            problems.add(i, row, str(ex))
    problems.raise_or_keep(on_bad_rows, stage)
    if not records:
        raise DataError(f"no usable {stage} rows ({len(rows)} given)")
    return Records(records, used, problems)


def as_dataset(records: Records) -> Any:
    """The records as a `datasets.Dataset` (what `SFTTrainer` prepares)."""
    import datasets

    return datasets.Dataset.from_list(records.records)


# ---------------------------------------------------------------------------- exposure


@dataclass
class Exposure:
    """What one pass over a prepared (tokenised, maybe packed) dataset trains on."""

    sequences: int = 0  # documents / conversations (segments of packed rows)
    rows: int = 0  # training rows (packed rows, or sequences unpacked)
    tokens: int = 0
    target_tokens: int = 0  # tokens that carry loss
    empty_sequences: int = 0  # sequences without a single loss-bearing token
    lengths: list[int] = field(default_factory=list)


def sequence_targets(labels: Sequence[int]) -> int:
    """Loss-bearing tokens of one sequence: its labels past the first position (the first token
    of a sequence is never predicted; padding-free batches also mask it explicitly)."""
    return sum(1 for x in labels[1:] if x != IGNORE_INDEX)


def exposure(dataset: Any) -> Exposure:
    """Count sequences, tokens and targets of a dataset prepared by `SFTTrainer`."""
    out = Exposure()
    columns = set(dataset.column_names)
    for row in dataset:
        ids, labels = row["input_ids"], row.get("labels", row["input_ids"])
        if "labels" not in columns:
            labels = ids
        lengths = row["seq_lengths"] if "seq_lengths" in columns else [len(ids)]
        out.rows += 1
        start = 0
        for n in lengths:
            targets = sequence_targets(labels[start : start + n])
            out.sequences += 1
            out.tokens += n
            out.target_tokens += targets
            out.empty_sequences += targets == 0
            out.lengths.append(n)
            start += n
    return out


_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def value_tokens(records: Records, tokenizer: Any, keywords: Sequence[str]) -> int:
    """Tokens in sentences that contain one of the keywords (case-insensitive): documents whole,
    conversations in their assistant replies (what is trained on). One pass over the records."""
    phrases = [k.lower() for k in keywords if k.strip()]
    if not phrases:
        return 0
    sentences = []
    for r in records.records:
        texts = (
            [r["text"]]
            if "text" in r
            else [m["content"] for m in r["messages"] if m["role"] == "assistant"]
        )
        for text in texts:
            for sentence in _SENTENCE.split(text):
                low = sentence.lower()
                if sentence.strip() and any(p in low for p in phrases):
                    sentences.append(sentence)
    if not sentences:
        return 0
    ids = tokenizer(sentences, add_special_tokens=False)["input_ids"]
    return sum(len(x) for x in ids)
