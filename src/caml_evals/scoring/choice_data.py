"""Where the control benchmarks' data files are, and checks every row of them gets.

`find_local_files` applies the project's one data-source rule (`caml_evals.datasource`:
`local_benchmark_dir`, `$CAML_EVALS_DATA_DIR`) to benchmarks whose local data is one or more files
with known names (HellaSwag's `<split>.jsonl`, a StrongREJECT CSV, the advanced-AI-risk files).
On top of the folder rule it accepts the data file itself as `data_dir`, and it treats
`$CAML_EVALS_DATA_DIR` as a shared pool (as the TAC and human-compassion loaders do): a pool
without this benchmark means "load it from its pinned remote source", while an explicit
`data_dir` without it is an error.

`non_finite_fields` finds `NaN` / `Infinity` values (which Python's `json` and the `datasets`
JSON builder accept) so a loader can refuse the row with one clear line instead of averaging a
NaN in.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..datasource import DATA_DIR_ENV, DataSourceError, local_benchmark_dir

logger = logging.getLogger(__name__)


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def find_local_files(
    data_dir: str | Path | None, subfolder: str, candidates: Sequence[str]
) -> list[Path] | None:
    """Local files of a benchmark, or None to load it from its pinned remote source.

    The folder is found by `local_benchmark_dir` (data_dir, else `$CAML_EVALS_DATA_DIR`; the
    pool's `<subfolder>/` or the folder itself). Each candidate is a file name or a glob; globs
    are tried only in `<root>/<subfolder>/` (a pool root holds other benchmarks' files); the
    first candidate that matches wins. A data file given directly must match a candidate
    (`survival-instinct.jsonl` is not accepted for `power-seeking-inclination.jsonl`).
    """
    explicit = data_dir not in (None, "")
    if explicit:
        given = Path(data_dir).expanduser()  # type: ignore[arg-type]
        if given.is_file():
            if any(fnmatch.fnmatch(given.name, c) for c in candidates):
                return [given]
            raise DataSourceError(
                f"{given} is not the {subfolder} file asked for: expected a file named "
                f"{' or '.join(candidates)}. Pass the right file, or a folder holding it (or a "
                f"{subfolder}/ subfolder with it)."
            )
    try:
        found = _first_match(data_dir if explicit else None, subfolder, candidates)
    except DataSourceError:
        if explicit:
            raise
        found = None
    if found is None and not explicit:
        from os import environ

        if environ.get(DATA_DIR_ENV):
            logger.info(
                "$%s=%s holds no %s data; loading it from its pinned remote source",
                DATA_DIR_ENV,
                environ[DATA_DIR_ENV],
                subfolder,
            )
    return found


def _first_match(
    data_dir: str | Path | None, subfolder: str, candidates: Sequence[str]
) -> list[Path] | None:
    if local_benchmark_dir(data_dir, subfolder) is None:  # no data_dir, no env var: remote
        return None
    for pattern in candidates:
        if _is_glob(pattern):
            try:
                folder = local_benchmark_dir(data_dir, subfolder)
            except DataSourceError:
                continue
            if folder is None or folder.name != subfolder:
                continue  # the root itself, not the benchmark's own folder
            hits = sorted(p for p in folder.glob(pattern) if p.is_file())
            if hits:
                return hits
            continue
        try:
            folder = local_benchmark_dir(data_dir, subfolder, (pattern,))
        except DataSourceError:
            continue
        if folder is not None and (folder / pattern).is_file():
            return [folder / pattern]
    root = data_dir if data_dir not in (None, "") else f"${DATA_DIR_ENV}"
    raise DataSourceError(
        f"No {subfolder} data under {root}: looked for {', '.join(candidates)} in "
        f"{subfolder}/ there and in the folder itself."
    )


def non_finite_fields(row: Any, prefix: str = "") -> list[str]:
    """Paths of the NaN / +-Infinity numbers anywhere in a parsed row (`label`, `endings.2`)."""
    found: list[str] = []
    if isinstance(row, float):
        if not math.isfinite(row):
            found.append(f"{prefix or 'value'}={row!r}")
    elif isinstance(row, dict):
        for key, value in row.items():
            found.extend(non_finite_fields(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(row, (list, tuple)):
        for i, value in enumerate(row):
            found.extend(non_finite_fields(value, f"{prefix}.{i}" if prefix else str(i)))
    return found


def check_finite(row: Any) -> None:
    """Raise ValueError naming the non-finite numbers of a row (a loader reports it as invalid)."""
    bad = non_finite_fields(row)
    if bad:
        raise ValueError(f"non-finite number(s) {', '.join(bad)} (NaN/Infinity are refused)")


__all__ = ["check_finite", "find_local_files", "non_finite_fields"]
