"""Where benchmark data comes from: a pinned Hugging Face Hub revision, or a local folder.

Every dataset-backed task takes a `data_dir` parameter and honours `$CAML_EVALS_DATA_DIR`: a folder
with one subfolder per benchmark in the layout of the shared data (e.g. `ahb-2.1/questions.jsonl`,
`advanced-ai-risk/*.jsonl`). A `data_dir` may also point straight at the benchmark's own folder.
Without either, data is loaded from the Hub at the pinned commit (from the local HF cache when
offline mode is on); when that fails the message says how to point at local files instead.

Errors here are Inspect `PrerequisiteError`s: `inspect eval` prints their message alone, without
a traceback, because they are the user's to fix (a path, a filter value), not a bug.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import DataSourceError, TaskArgumentError

DATA_DIR_ENV = "CAML_EVALS_DATA_DIR"



def local_file(path: str | os.PathLike[str], what: str) -> Path:
    """An explicitly given data file (`-T questions_file=...`), which must exist."""
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise DataSourceError(f"{what} file {str(path)!r} does not exist ({resolved.resolve()}).")
    return resolved


def local_benchmark_dir(
    data_dir: str | os.PathLike[str] | None, subfolder: str, required_files: tuple[str, ...] = ()
) -> Path | None:
    """Resolve the local folder for one benchmark, or None to use the Hub.

    `data_dir` wins over the env var. It may be the parent (holding `subfolder/`) or the
    benchmark folder itself (holding the required files directly).
    """
    root = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    if root is None:
        return None
    root_path = Path(root).expanduser()
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
        raise DataSourceError(
            f"Could not load {repo_id} ({config or 'default'}, split {split}, revision "
            f"{revision[:10]}): {type(ex).__name__}: {ex}. Use data_dir / ${DATA_DIR_ENV} to load "
            f"local files instead: {local_hint}"
        ) from ex
    return [dict(row) for row in ds]


def load_jsonl_rows(path: Path) -> list[dict[str, Any]]:
    """Read JSONL with `datasets`' JSON builder semantics but report malformed lines by number."""
    import json

    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
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
    return rows
