"""Writing result files whole or not at all: a temp file beside the target, then one rename.

Why: a command that fails half-way (a full disk, a bad value discovered late, Ctrl-C) must not
leave a truncated `report.json` that a later step reads as if it were complete. Writing to a
hidden temp file in the same folder and `os.replace`-ing it onto the target makes the new file
appear in one step; on any error the temp file is removed and the old target (if any) is kept.

An output path that cannot be written (a missing parent that cannot be created, no permission,
a folder where a file should go) is an `OutputError` naming the path: one line, exit code 2.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError


def _reason(ex: OSError) -> str:
    return ex.strerror or type(ex).__name__


def ensure_dir(path: str | Path) -> Path:
    """`path` as a folder (created with its parents), or an OutputError naming it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(
            f"{path}: cannot create the output folder: a file is in the way"
        ) from None
    except OSError as ex:
        raise OutputError(f"{path}: cannot create the output folder: {_reason(ex)}") from None
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path to write to; on success it is renamed onto `path`, on error removed.

    For writers that want a file name (matplotlib, sqlite, `csv` with its own open).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: cannot write the output file: it is a folder")
    ensure_dir(path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    except OSError as ex:
        raise OutputError(f"{path}: cannot write the output file: {_reason(ex)}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # mkstemp makes the file 0600; give it the target's mode, or an ordinary file's
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
        yield tmp
        os.replace(tmp, path)
    except OSError as ex:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write the output file: {_reason(ex)}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def writable_dir(path: str | Path) -> Path:
    """Check up front that output files can go in folder `path`, creating nothing.

    Commands that compute for a while call this first, so an unwritable `--out` fails at once
    instead of after the work (and a failed command leaves no empty folder behind). The folder
    itself is made when the first file is written.
    """
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        what = "the output folder" if probe == path else f"the output folder (at {probe})"
        raise OutputError(f"{path}: cannot create {what}: a file is in the way")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write in {probe}: permission denied")
    return path


def writable_file(path: str | Path) -> Path:
    """Check up front that file `path` could be written (not a folder; its folder writable)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: cannot write the output file: it is a folder")
    writable_dir(path.parent)
    return path


__all__ = ["atomic_path", "ensure_dir", "writable_dir", "writable_file", "write_text"]
