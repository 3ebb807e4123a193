"""Merge the corpora of several shards into one and dedup them once, in bounded memory.

Each shard dedups only within itself; two shards can hold near-copies of each other. `merge_corpora`
streams the shard files in order (shard index, then row order; inputs sorted by name, so the result
is deterministic), drops every row that is a near-duplicate of an earlier kept row of any shard (or
repeats an id), and writes:

- `<out>/<kind>.jsonl`: the merged corpus (rows unchanged);
- `<out>/rejected/<kind>.merge.jsonl`: every dropped row with `reason` (`near_duplicate` |
  `duplicate_id`), `duplicate_of` and the estimated Jaccard;
- `<out>/<kind>.merge.json`: inputs (path, sha256, rows, malformed lines), counts, dedup settings.

A malformed line is counted and listed (file, line, error), never silently skipped. The dedup
settings default to the shards' spec (`filters` in their manifests) when every manifest agrees.
Memory: one batch of rows and SQLite's capped page cache (dedup.py), whatever the corpus size.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from caml_train.generate.dedup import StreamingDeduper
from caml_train.generate.rows import write_json

Kind = Literal["documents", "instructions"]


class MergeError(ValueError):
    """Inputs that cannot be merged (none found, mixed kinds or specs); the CLI makes it one line."""


class InputFile(BaseModel):
    path: str
    sha256: str
    rows: int = 0
    malformed: int = 0


class Malformed(BaseModel):
    path: str
    line: int
    error: str


class DedupSettings(BaseModel):
    threshold: float = 0.8
    num_perm: int = 128
    shingle_words: int = 5
    source: str = "defaults"


class MergeReport(BaseModel):
    kind: Kind
    inputs: list[InputFile]
    specs: dict[str, int]
    dedup: DedupSettings
    rows_in: int
    written: int
    dropped: dict[str, int]
    malformed: list[Malformed] = Field(default_factory=list)
    files: dict[str, str]
    seconds: float


def find_inputs(paths: list[Path], kind: Kind) -> list[Path]:
    """Corpus files: each path as given, or a folder's `<kind>*.jsonl` (not its `rejected/`)."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(p.glob(f"{kind}*.jsonl"))
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(2, "no such file or folder", str(p))
    unique = list(dict.fromkeys(f.resolve() for f in found))
    if not unique:
        raise MergeError(f"no {kind}*.jsonl found in {', '.join(map(str, paths))}")
    return unique


def _manifest_filters(files: list[Path]) -> DedupSettings:
    """The dedup settings of the shards' spec, when their manifests exist and agree."""
    seen: set[tuple[float, int, int]] = set()
    for f in files:
        manifest = f.with_name(f.name.removesuffix(".jsonl") + ".manifest.json")
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            filters = data["spec_config"]["filters"]
            seen.add(
                (
                    float(filters["dedup_threshold"]),
                    int(filters["dedup_num_perm"]),
                    int(filters["shingle_words"]),
                )
            )
        except (OSError, ValueError, KeyError, TypeError):
            return DedupSettings()
    if len(seen) != 1:
        return DedupSettings()
    t, p, w = seen.pop()
    return DedupSettings(threshold=t, num_perm=p, shingle_words=w, source="shard manifests")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def row_text(row: dict[str, Any]) -> str | None:
    """The text dedup compares: a document's text, or a Q/A pair's question and answer."""
    if isinstance(row.get("text"), str):
        return row["text"]
    messages = row.get("messages")
    if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
        return "\n".join(str(m.get("content", "")) for m in messages)
    return None


def _rows(
    files: list[Path], inputs: list[InputFile], malformed: list[Malformed]
) -> Iterator[tuple[str, str, str]]:
    """(id, text, raw line) of every valid row, in order; bad lines go to `malformed`."""
    for path, info in zip(files, inputs):
        with path.open("rb") as fh:
            for number, raw_line in enumerate(fh, start=1):
                if not raw_line.strip():
                    continue
                try:
                    line = raw_line.decode("utf-8")
                    row = json.loads(line)
                except UnicodeDecodeError as ex:
                    error = f"not UTF-8 ({ex.reason} at byte {ex.start})"
                except ValueError as ex:
                    error = f"not JSON: {getattr(ex, 'msg', ex)}"
                else:
                    text = row_text(row) if isinstance(row, dict) else None
                    if (
                        isinstance(row, dict)
                        and isinstance(row.get("id"), str)
                        and text is not None
                    ):
                        info.rows += 1
                        yield row["id"], text, line.rstrip("\n")
                        continue
                    error = "not a corpus row (needs a string id and text or messages)"
                info.malformed += 1
                malformed.append(Malformed(path=str(path), line=number, error=error))


class _AtomicLines:
    """A JSONL file written through a temporary file and renamed on success."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        fd, self.tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
        self.fh = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, line: str) -> None:
        self.fh.write(line + "\n")

    def commit(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.fh.close()
        Path(self.tmp).unlink(missing_ok=True)


def merge_corpora(
    paths: list[Path],
    out_dir: Path,
    *,
    kind: Kind = "documents",
    threshold: float | None = None,
    num_perm: int | None = None,
    shingle_words: int | None = None,
    index_path: Path | None = None,
) -> MergeReport:
    """Merge and dedup (module docstring); returns the report also written as JSON."""
    import time

    started = time.monotonic()
    files = find_inputs(paths, kind)
    out_dir = Path(out_dir)
    corpus_path = out_dir / f"{kind}.jsonl"
    if corpus_path.resolve() in files:
        raise MergeError(f"the merged corpus {corpus_path} would overwrite one of its inputs")
    settings = _manifest_filters(files)
    overrides = {"threshold": threshold, "num_perm": num_perm, "shingle_words": shingle_words}
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        settings = settings.model_copy(update={**given, "source": "options"})
    inputs = [InputFile(path=str(f), sha256=_sha256(f)) for f in files]
    malformed: list[Malformed] = []
    specs: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    paths_out = {
        "corpus": corpus_path,
        "rejected": out_dir / "rejected" / f"{kind}.merge.jsonl",
        "report": out_dir / f"{kind}.merge.json",
    }
    corpus, rejected = _AtomicLines(paths_out["corpus"]), _AtomicLines(paths_out["rejected"])
    written = rows_in = 0
    try:
        with StreamingDeduper(
            threshold=settings.threshold,
            num_perm=settings.num_perm,
            shingle_words=settings.shingle_words,
            path=index_path,
            on_duplicate_id="report",
        ) as dedup:
            stream = _rows(files, inputs, malformed)
            lines: deque[str] = deque()  # raw rows of the batch in flight, in order

            def texts() -> Iterator[tuple[str, str]]:
                for item_id, text, raw in stream:
                    lines.append(raw)
                    yield item_id, text

            for _item_id, dup in dedup.filter(texts()):
                raw = lines.popleft()
                rows_in += 1
                row = json.loads(raw)
                specs[str(row.get("spec"))] += 1
                if dup is None:
                    corpus.write(raw)
                    written += 1
                    continue
                reason = "near_duplicate" if dup.of is not None else "duplicate_id"
                dropped[reason] += 1
                row.update(
                    reason=reason,
                    detail=f"jaccard~{dup.similarity:.2f}",
                    duplicate_of=dup.of,
                    text=row_text(row),
                )
                rejected.write(json.dumps(row, ensure_ascii=False))
        corpus.commit()
        rejected.commit()
    except BaseException:
        corpus.abort()
        rejected.abort()
        raise
    report = MergeReport(
        kind=kind,
        inputs=inputs,
        specs=dict(specs),
        dedup=settings,
        rows_in=rows_in,
        written=written,
        dropped=dict(sorted(dropped.items())),
        malformed=malformed,
        files={k: str(v) for k, v in paths_out.items()},
        seconds=round(time.monotonic() - started, 3),
    )
    write_json(paths_out["report"], report.model_dump(mode="json"))
    return report
