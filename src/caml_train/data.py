"""Corpus, instruction and SFT rows -> token examples -> (packed) training batches.

Every stage ends in the same shape, an `Example(input_ids, labels)`, so one trainer serves all
three: documents are labelled everywhere (causal-LM continued pretraining), conversations only
on assistant tokens. Packing then concatenates examples into fixed-length rows whose
`position_ids` restart at 0 for every example; with no 2D attention mask, transformers turns
that into a block-diagonal causal mask (sdpa/eager) or a varlen call (flash-attention), so a
token never attends to another document in the same row. The first token of every example is
unlabelled, so the previous document's last token is never trained to predict it.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caml_evals.datasource import DataSourceError, load_hub_rows, load_jsonl_rows

from .config import DataSource, Stage

IGNORE_INDEX = -100
_ROLES = {"system", "user", "assistant"}


class DataError(ValueError):
    """Rows that cannot be used for training; the message lists them (row index and reason)."""


# ---------------------------------------------------------------------------- loading rows


def load_rows(source: DataSource) -> list[dict[str, Any]]:
    """All rows of a local JSONL/parquet file (or a folder of them) or of a pinned Hub dataset."""
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
            import datasets

            rows.extend(
                dict(r) for r in datasets.load_dataset("parquet", data_files=str(f), split="train")
            )
        elif f.suffix in {".jsonl", ".json"}:
            rows.extend(load_jsonl_rows(f))
        else:
            raise DataSourceError(f"{f}: unsupported file type (use .jsonl or .parquet)")
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


# ---------------------------------------------------------------------------- row validation


def to_messages(row: dict[str, Any]) -> list[dict[str, str]]:
    """A conversation from a `messages` row or a `prompt`/`response` row (optional `system`)."""
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError("`messages` must be a non-empty list")
        out = []
        for i, m in enumerate(messages):
            if (
                not isinstance(m, dict)
                or m.get("role") not in _ROLES
                or not isinstance(m.get("content"), str)
            ):
                raise ValueError(f"message {i}: needs role in {sorted(_ROLES)} and string content")
            out.append({"role": m["role"], "content": m["content"]})
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
class Problems:
    """Rows that were not used, with reasons: reported in the run card, never silently lost."""

    items: list[str] = field(default_factory=list)

    def add(self, index: int, row: dict[str, Any], reason: str) -> None:
        rid = row.get("id", "") if isinstance(row, dict) else ""
        self.items.append(f"row {index}{f' (id {rid})' if rid else ''}: {reason}")

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


# ---------------------------------------------------------------------------- tokenisation


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


def tokenize_document(text: str, tokenizer: Any, max_len: int) -> list[Example]:
    """One document -> one or more examples of at most max_len tokens (long documents are split,
    not truncated), each ending with EOS when it is the document's end; every token is a target
    except the first of each piece."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None and getattr(tokenizer, "add_bos_token", False):
        ids = [tokenizer.bos_token_id] + ids
    ids = ids + [tokenizer.eos_token_id]
    out = []
    for start in range(0, len(ids), max_len):
        piece = ids[start : start + max_len]
        if len(piece) < 2:
            continue  # a lone trailing token teaches nothing (its label would be masked)
        out.append(Example(piece, [IGNORE_INDEX] + piece[1:]))
    return out


class ChatTemplateError(ValueError):
    """The tokenizer's chat template does not render conversations prefix-consistently."""


def assistant_char_spans(
    messages: list[dict[str, str]], tokenizer: Any
) -> tuple[str, list[tuple[int, int]]]:
    """Render a conversation with the model's chat template and locate each assistant turn.

    A turn's span runs from the end of the rendered prefix with the generation prompt to the end
    of the rendering that includes the turn, trailing whitespace dropped: the reply text plus the
    template's end-of-turn token (e.g. SmolLM2's `<|im_end|>`), which the model must learn to
    emit to stop. Works for any template that renders prefixes consistently, and checks that.
    """
    render = lambda msgs, gen: tokenizer.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=gen
    )
    full = render(messages, False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render(messages[:i], True) if i else ""
        through = render(messages[: i + 1], False)
        if not full.startswith(through) or not through.startswith(before):
            raise ChatTemplateError(
                "the chat template does not render conversation prefixes consistently, so "
                f"assistant tokens cannot be located (message {i})"
            )
        end = len(through.rstrip())
        if end > len(before):
            spans.append((len(before), end))
    return full, spans


def tokenize_conversation(
    messages: list[dict[str, str]], tokenizer: Any, max_len: int
) -> Example | None:
    """Chat-template tokens, labelled only where a token starts inside an assistant span.

    Long conversations are truncated to max_len; None if no assistant token survives.
    """
    text, spans = assistant_char_spans(messages, tokenizer)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = []
    for tok, (start, end) in zip(ids, offsets):
        inside = any(s <= start < e for s, e in spans) and end > start
        labels.append(tok if inside else IGNORE_INDEX)
    ids, labels = ids[:max_len], labels[:max_len]
    labels[0] = IGNORE_INDEX
    if all(x == IGNORE_INDEX for x in labels):
        return None
    return Example(ids, labels)


@dataclass
class BuiltDataset:
    examples: list[Example]
    rows_used: int
    problems: Problems
    truncated: int = 0
    used_indices: list[int] = field(default_factory=list)  # rows that made it into training

    @property
    def n_tokens(self) -> int:
        return sum(len(e) for e in self.examples)

    @property
    def n_target_tokens(self) -> int:
        return sum(sum(1 for x in e.labels if x != IGNORE_INDEX) for e in self.examples)


def build_examples(
    rows: Sequence[dict[str, Any]],
    stage: Stage,
    tokenizer: Any,
    seq_len: int,
    on_bad_rows: str = "error",
) -> BuiltDataset:
    """Validate and tokenise rows for a stage; bad rows are collected (and raised by default)."""
    problems = Problems()
    examples: list[Example] = []
    used = truncated = 0
    used_indices: list[int] = []
    for i, row in enumerate(rows):
        try:
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")  # noqa: TRY004 - reported as a bad row
            if stage == "text":
                pieces = tokenize_document(to_text(row), tokenizer, seq_len)
                if not pieces:
                    raise ValueError("tokenises to nothing")
                truncated += len(pieces) > 1
                examples.extend(pieces)
            else:
                messages = to_messages(row)
                ex = tokenize_conversation(messages, tokenizer, seq_len)
                if ex is None:
                    raise ValueError(f"no assistant token within seq_len={seq_len}")
                examples.append(ex)
            used += 1
            used_indices.append(i)
        except ChatTemplateError:
            raise
        except ValueError as ex:
            problems.add(i, row, str(ex))
    problems.raise_or_keep(on_bad_rows, stage)
    if not examples:
        raise DataError(f"no usable {stage} rows ({len(rows)} given)")
    return BuiltDataset(examples, used, problems, truncated, used_indices)


# ---------------------------------------------------------------------------- packing


@dataclass(frozen=True)
class PackedRow:
    """A training row: several examples back to back, each with its own positions from 0."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]

    @property
    def lengths(self) -> list[int]:
        out, run = [], 0
        for i, p in enumerate(self.position_ids):
            if p == 0 and i > 0:
                out.append(run)
                run = 0
            run += 1
        out.append(run)
        return out


def pack(examples: Sequence[Example], seq_len: int, pad_token_id: int) -> list[PackedRow]:
    """First-fit-decreasing bin packing of examples into rows of exactly seq_len tokens.

    Examples are never split (each is at most seq_len already). The tail of a row is padding
    with labels -100 and its own position run from 0, so it forms a separate segment that no
    real token can see (it comes later in causal order and is its own block).
    """
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i]), i))
    bins: list[list[int]] = []
    free: list[int] = []
    for i in order:
        n = len(examples[i])
        if n > seq_len:
            raise ValueError(f"example {i} has {n} tokens > seq_len {seq_len}")
        for b, room in enumerate(free):
            if room >= n:
                bins[b].append(i)
                free[b] -= n
                break
        else:
            bins.append([i])
            free.append(seq_len - n)
    rows = []
    for members in bins:
        ids: list[int] = []
        labels: list[int] = []
        pos: list[int] = []
        for i in sorted(members):
            ex = examples[i]
            ids += ex.input_ids
            labels += ex.labels
            pos += list(range(len(ex)))
        pad = seq_len - len(ids)
        ids += [pad_token_id] * pad
        labels += [IGNORE_INDEX] * pad
        pos += list(range(pad))
        rows.append(PackedRow(ids, labels, pos))
    return rows


@dataclass
class PackedCollator:
    """Stacks packed rows; deliberately no attention_mask (its absence enables segment masking).

    `flatten=True` concatenates the whole batch into ONE row of batch x seq_len tokens. Needed for
    flash-attention: transformers detects packed sequences from position_ids only when the batch
    dimension is 1 (`_is_packed_sequence`), and otherwise runs one ordinary causal call per row,
    letting documents in a row attend to each other. Flattening changes nothing else: every row
    starts with an example whose first label is -100, so no token is trained to predict across
    the seam, and sdpa/eager give the same block-diagonal mask either way (a test checks this).
    """

    flatten: bool = False

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        keys = ("input_ids", "labels", "position_ids")
        if self.flatten:
            return {
                k: torch.tensor([[x for r in rows for x in r[k]]], dtype=torch.long) for k in keys
            }
        return {k: torch.tensor([r[k] for r in rows], dtype=torch.long) for k in keys}


def needs_flat_batches(attn_implementation: str | None) -> bool:
    """Flash-attention kernels see packed segments only in a batch of one row (see above)."""
    return bool(attn_implementation) and "flash" in str(attn_implementation)


@dataclass
class PaddedCollator:
    """One example per row, right-padded to the longest in the batch, padding masked out."""

    pad_token_id: int

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids, labels, mask = [], [], []
        for r in rows:
            pad = width - len(r["input_ids"])
            ids.append(r["input_ids"] + [self.pad_token_id] * pad)
            labels.append(r["labels"] + [IGNORE_INDEX] * pad)
            mask.append([1] * len(r["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }


def as_rows(examples: Iterable[Example] | Iterable[PackedRow]) -> list[dict[str, list[int]]]:
    """Plain dict rows (a list is a valid map-style torch Dataset for the Trainer)."""
    out = []
    for e in examples:
        row = {"input_ids": e.input_ids, "labels": e.labels}
        if isinstance(e, PackedRow):
            row["position_ids"] = e.position_ids
        out.append(row)
    return out


def training_rows(
    built: BuiltDataset,
    seq_len: int,
    packing: bool,
    pad_token_id: int,
    attn_implementation: str | None = None,
):
    """(rows, collator) for the Trainer."""
    if packing:
        collator = PackedCollator(flatten=needs_flat_batches(attn_implementation))
        return as_rows(pack(built.examples, seq_len, pad_token_id)), collator
    return as_rows(built.examples), PaddedCollator(pad_token_id)
