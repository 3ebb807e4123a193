"""Row formats of the generated corpora (the contract with `caml_train.data`) and JSONL I/O.

Both files load with `datasets.load_dataset("json", data_files=path)`: every row has the same keys
and types. Rejected texts go to `rejected/<kind>.jsonl` with their reason, never to the corpus.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from caml_train.generate.grid import TemplateParams


class DocumentRow(BaseModel):
    """One synthetic document for document-tuning (continued pre-training on plain text)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    text: str
    spec: str
    params: TemplateParams
    model: str
    prompt_hash: str


class ChatMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class InstructionRow(BaseModel):
    """One user/assistant exchange for the instruction-tuning control. `source_id` is the document
    it was derived from, or None when it was generated straight from the grid."""

    id: str
    messages: list[ChatMessage]
    spec: str
    params: TemplateParams
    model: str
    prompt_hash: str
    source_id: str | None = None


class RejectedRow(BaseModel):
    """A generated text that did not pass post-processing (kept for audit and re-filtering)."""

    id: str
    reason: str
    detail: str = ""
    text: str
    spec: str
    params: TemplateParams
    model: str
    prompt_hash: str
    duplicate_of: str | None = None
    source_id: str | None = None


def write_jsonl(path: Path, rows: Iterable[BaseModel]) -> int:
    """Write rows atomically (temp file + rename): a reader never sees half a corpus."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(row.model_dump_json() + "\n")
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, path)


class MalformedLine(BaseModel):
    line: int
    error: str


def read_document_rows(path: Path) -> tuple[list[DocumentRow], list[MalformedLine]]:
    """Documents of a corpus file plus every line that is not a valid document row."""
    rows: list[DocumentRow] = []
    bad: list[MalformedLine] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rows.append(DocumentRow.model_validate_json(line))
            except ValidationError as ex:
                first = ex.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "<row>"
                bad.append(MalformedLine(line=number, error=f"{where}: {first['msg']}"))
    return rows, bad
