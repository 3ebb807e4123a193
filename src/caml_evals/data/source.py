"""Where benchmark data comes from, and a record of where it actually came from.

The one data-source rule of every dataset task: an explicit file (`-T questions_file=...`) wins
for its part; else `data_dir`, else `$CAML_EVALS_DATA_DIR` (a folder with one subfolder per
benchmark in the layout of the shared data, e.g. `ahb-2.1/questions.jsonl`, or the benchmark's
own folder); else the Hub at a pinned commit (served from the local HF cache in offline mode).

Every load returns a `DataOrigin` for each part: the Hub id, config and revision, or the local
path with the sha256 of the file read. Tasks log these (`eval.metadata["data_source"]`), so a
log never claims the pinned Hub revision for data that came from a local folder.

Errors are `DataSourceError`s (one line, no traceback): a missing path, a file that is not
UTF-8, a malformed JSONL line, an unreachable or gated Hub dataset (the message names HF_TOKEN
and the dataset's terms page).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from ..errors import DataSourceError

DATA_DIR_ENV = "CAML_EVALS_DATA_DIR"


class DataOrigin(BaseModel):
    """One part of a benchmark's data as it was actually loaded (into the eval log)."""

    part: str  # e.g. "questions", "dimensions"
    kind: Literal["hub", "local", "packaged"]
    repo_id: str | None = None
    config: str | None = None
    revision: str | None = None
    path: str | None = None
    sha256: str | None = None
    rows: int = 0

    def describe(self) -> str:
        if self.kind == "hub":
            return f"hf://{self.repo_id}@{(self.revision or '')[:10]}"
        return str(self.path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def local_origin(part: str, path: Path, rows: int, kind: str = "local") -> DataOrigin:
    return DataOrigin(
        part=part, kind=kind, path=str(path.resolve()), sha256=sha256_of(path), rows=rows
    )  # type: ignore[arg-type]


def hub_origin(
    part: str, repo_id: str, config: str | None, revision: str, rows: int
) -> DataOrigin:
    return DataOrigin(
        part=part, kind="hub", repo_id=repo_id, config=config, revision=revision, rows=rows
    )


def local_file(path: str | os.PathLike[str], what: str) -> Path:
    """An explicitly given data file (`-T questions_file=...`), which must exist."""
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise DataSourceError(f"{what} file {str(path)!r} does not exist ({resolved.resolve()}).")
    return resolved


def data_root(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """`data_dir` if given, else `$CAML_EVALS_DATA_DIR`, else None (use the Hub)."""
    root = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    return None if root is None else Path(root).expanduser()


def local_benchmark_dir(
    data_dir: str | os.PathLike[str] | None, subfolder: str, required_files: tuple[str, ...] = ()
) -> Path | None:
    """Resolve the local folder for one benchmark, or None to use the Hub.

    `data_dir` wins over the env var. It may be the parent (holding `subfolder/`) or the
    benchmark folder itself (holding the required files directly).
    """
    root_path = data_root(data_dir)
    if root_path is None:
        return None
    for candidate in (root_path / subfolder, root_path):
        if candidate.is_dir() and all((candidate / f).exists() for f in required_files):
            return candidate
    raise DataSourceError(
        f"No {subfolder!r} data under {root_path} "
        f"(looked for {subfolder}/{', '.join(required_files) or '*'} and for the files directly). "
        f"Set data_dir / ${DATA_DIR_ENV} to a folder with a {subfolder}/ subfolder."
    )


def hub_offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def gated_hint(repo_id: str) -> str:
    return (
        f"If the dataset is gated, accept its terms at https://huggingface.co/datasets/{repo_id} "
        f"and set HF_TOKEN (or run `huggingface-cli login`)."
    )


def _looks_gated(ex: BaseException) -> bool:
    text = f"{type(ex).__name__} {ex}".lower()
    return any(w in text for w in ("gated", "401", "403", "unauthorized", "authentic", "forbidden"))


def load_hub_rows(
    repo_id: str, config: str | None, split: str, revision: str, local_hint: str
) -> list[dict[str, Any]]:
    """Load a pinned Hub dataset as plain dict rows, with an actionable error when unreachable.

    Offline mode does not stop the attempt: `datasets` serves a pinned revision from the local
    HF cache without the network. Only when that fails does the offline message appear.
    """
    import datasets

    try:
        ds = datasets.load_dataset(repo_id, config, split=split, revision=revision)
    except Exception as ex:  # network, auth, missing revision: all need the same advice
        if hub_offline():
            raise DataSourceError(
                f"Hugging Face offline mode is on and {repo_id} ({config or 'default'}) at "
                f"revision {revision[:10]} is not in the local HF cache ({type(ex).__name__}). "
                f"Point data_dir (or ${DATA_DIR_ENV}) at local files instead: {local_hint}"
            ) from ex
        gated = (gated_hint(repo_id) + " ") if _looks_gated(ex) else ""
        raise DataSourceError(
            f"Could not load {repo_id} ({config or 'default'}, split {split}, revision "
            f"{revision[:10]}): {type(ex).__name__}: {' '.join(str(ex).split())[:300]}. {gated}"
            f"Or use data_dir / ${DATA_DIR_ENV} to load local files instead: {local_hint}"
        ) from ex
    return [dict(row) for row in ds]


def read_text(path: Path) -> str:
    """A data file's text; a file that is not UTF-8 (or not readable) is a DataSourceError."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as ex:
        raise DataSourceError(
            f"{path}: not UTF-8 text (undecodable byte at offset {ex.start}); re-save it as UTF-8"
        ) from None
    except IsADirectoryError:
        raise DataSourceError(f"{path}: is a folder, not a data file") from None
    except OSError as ex:
        raise DataSourceError(f"{path}: cannot be read ({ex.strerror or ex})") from None


def load_jsonl_rows(path: Path, require_rows: bool = False) -> list[dict[str, Any]]:
    """Read JSONL (one object a line), reporting malformed lines by number.

    `require_rows`: a file with no row at all is an error (a question file that is empty would
    otherwise end in Inspect's bare "dataset is empty").
    """
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as ex:
            problems.append(f"line {lineno}: {ex.msg}")
            continue
        if not isinstance(row, dict):
            problems.append(f"line {lineno}: expected a JSON object, got {type(row).__name__}")
            continue
        rows.append(row)
    if problems:
        raise DataSourceError(
            f"{path}: {len(problems)} malformed line(s): " + "; ".join(problems[:10])
        )
    if require_rows and not rows:
        raise DataSourceError(f"{path}: the file has no rows (it is empty or only blank lines)")
    return rows
