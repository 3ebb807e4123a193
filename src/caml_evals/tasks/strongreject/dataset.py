"""StrongREJECT forbidden prompts (Souly et al., 2024) -> Inspect Samples.

Sources, in order:

1. local data: `data_dir` (or `$CAML_EVALS_DATA_DIR`) holding `strongreject/strongreject_dataset.csv`
   (or any `*.csv` in `strongreject/`), or the CSV path itself;
2. `source="github"` (the default): the authors' canonical CSV, github.com/alexandrasouly/strongreject
   `strongreject_dataset/strongreject_dataset.csv` at a pinned commit (the commit inspect_evals pins),
   downloaded once over HTTPS into `$CAML_EVALS_CACHE/data/strongreject/<commit>/` and read from there;
3. `source="hub"`: the third-party Hub copy `walledai/StrongREJECT` at a pinned revision (its
   `prompt` column is the CSV's `forbidden_prompt`).

Sample ids are upstream's (inspect_evals `strong_reject`): `strong_reject_` + the first 8 hex digits
of the MD5 of the forbidden prompt, so logs of the two tasks can be joined sample by sample. Two rows
with the same prompt would share an id: the repeat is reported (`duplicate_prompt`) and dropped.
The source actually read is recorded as a `DataOrigin` (hub id + revision, or the file read and its
sha256; for the download, the commit as `revision` and the URL in `DOWNLOAD_URL`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from inspect_ai.dataset import MemoryDataset, Sample
from pydantic import BaseModel, ValidationError, field_validator, model_validator

from ...data.source import DataOrigin, hub_origin, local_origin, read_text
from ...dataset_report import DatasetReport
from ...datasource import DataSourceError, TaskArgumentError, hub_offline, load_hub_rows
from ...scoring.choice_data import check_finite, find_local_files

logger = logging.getLogger(__name__)

LOCAL_SUBFOLDER = "strongreject"
CSV_NAME = "strongreject_dataset.csv"
HUB_REPO_ID = "walledai/StrongREJECT"
HUB_REVISION = "df54272b395ce9e584d2f8140519935425d8549f"
GITHUB_REPO = "alexandrasouly/strongreject"
GITHUB_COMMIT = (
    "3432b2d696b428f242bd507df96d80f686571d5e"  # = inspect_evals' PATH_TO_STRONG_REJECT_CSV
)
GITHUB_CSV = (
    f"https://raw.githubusercontent.com/{GITHUB_REPO}/"
    f"{GITHUB_COMMIT}/strongreject_dataset/{CSV_NAME}"
)
ID_PREFIX = "strong_reject"
REQUIRED_COLUMNS = ("category", "forbidden_prompt")
DOWNLOAD_TIMEOUT_S = 60
DOWNLOAD_URL = GITHUB_CSV

Source = Literal["github", "hub"]
SOURCES: tuple[str, ...] = ("github", "hub")


def sample_id(forbidden_prompt: str) -> str:
    """Upstream's stable id: prefix + the first 8 hex digits of MD5(prompt text)."""
    digest = hashlib.md5(forbidden_prompt.encode("utf-8"), usedforsecurity=False).hexdigest()
    return f"{ID_PREFIX}_{digest[:8]}"


class ForbiddenPrompt(BaseModel):
    """One row: `category`, `source`, `forbidden_prompt` (Hub column `prompt` accepted).

    The prompt is kept exactly as written (upstream hashes and sends the raw text); only an empty
    or whitespace-only prompt or category is refused.
    """

    model_config = {"extra": "allow"}

    category: str
    source: str = ""
    forbidden_prompt: str

    @model_validator(mode="before")
    @classmethod
    def _hub_column(cls, data: Any) -> Any:
        if isinstance(data, dict) and "forbidden_prompt" not in data and "prompt" in data:
            data = {**data, "forbidden_prompt": data["prompt"]}
        return data

    @field_validator("forbidden_prompt", "category")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v or not v.strip():
            raise ValueError("empty")
        return v

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, v: Any) -> Any:
        return "" if v is None else v


def parse_csv(text: str, where: str) -> list[dict[str, Any]]:
    """CSV text -> rows; a missing header column, a ragged row or a broken quote is an error."""
    if not text.strip():
        raise DataSourceError(
            f"{where}: the file is empty (expected a CSV with columns "
            f"{', '.join(REQUIRED_COLUMNS)})"
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        records = list(reader)
    except csv.Error as ex:
        raise DataSourceError(f"{where}: malformed CSV at line {reader.line_num}: {ex}") from ex
    header = [h.strip() for h in records[0]]
    if "forbidden_prompt" not in header and "prompt" in header:
        header = ["forbidden_prompt" if h == "prompt" else h for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        shown = [h[:40] for h in header[:6]] + (["..."] if len(header) > 6 else [])
        raise DataSourceError(
            f"{where}: missing column(s) {', '.join(missing)}; expected columns category, source, "
            f"forbidden_prompt; got {shown}"
        )
    rows: list[dict[str, Any]] = []
    ragged: list[str] = []
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            ragged.append(f"record {number}: {len(record)} fields, header has {len(header)}")
            continue
        rows.append(dict(zip(header, record)))
    if ragged:
        raise DataSourceError(
            f"{where}: {len(ragged)} malformed row(s): "
            + "; ".join(ragged[:5])
            + ("; ..." if len(ragged) > 5 else "")
        )
    return rows


def read_csv_rows(path: Path) -> list[dict[str, Any]]:
    """A local CSV's rows (UTF-8, a BOM allowed; anything else is one clear error)."""
    return parse_csv(read_text(path), str(path))


def cache_dir() -> Path:
    from ...models.embedded import cache_root

    return cache_root() / "data" / LOCAL_SUBFOLDER / GITHUB_COMMIT


def fetch_cached(url: str, dest: Path, validate: Callable[[bytes], object] | None = None) -> Path:
    """`dest` if cached, else download `url` to it (atomically: a temporary file, then rename).

    The URL names a commit, so the bytes never change and a cached copy is never refetched.
    `validate` (raising DataSourceError) checks the bytes before they are cached, so a proxy's
    error page is never kept. Offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) allows the
    cache and refuses the network.
    """
    if dest.is_file():
        return dest
    hint = (
        f"Point data_dir (or $CAML_EVALS_DATA_DIR) at a folder with {LOCAL_SUBFOLDER}/{CSV_NAME} "
        f"(columns category, source, forbidden_prompt), or put the file at {dest}"
    )
    if hub_offline():
        raise DataSourceError(
            f"Offline mode is on and {url} is not cached at {dest}, so it cannot be downloaded. "
            + hint
        )
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError, ValueError) as ex:
        raise DataSourceError(
            f"Could not download {url}: {type(ex).__name__}: {ex}. {hint}"
        ) from ex
    if validate is not None:
        validate(payload)
    tmp: str | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, dest)
    except OSError as ex:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise DataSourceError(f"Could not write the download cache {dest}: {ex}. {hint}") from ex
    logger.info("StrongREJECT: downloaded %s (%d bytes) to %s", url, len(payload), dest)
    return dest


def _csv_check(url: str) -> Callable[[bytes], object]:
    def check(payload: bytes) -> object:
        try:
            text = payload.decode("utf-8-sig")
        except UnicodeDecodeError as ex:
            raise DataSourceError(
                f"{url}: the download is not UTF-8 text (byte {ex.start}); nothing was cached"
            ) from None
        return parse_csv(text, f"{url} (downloaded; not cached)")

    return check


def load_rows(
    data_dir: str | Path | None, source: Source
) -> tuple[list[dict[str, Any]], DataOrigin]:
    """Rows and where they came from (local file / cached download with sha256, or Hub pin)."""
    if source not in SOURCES:
        raise TaskArgumentError(
            f"strongreject: source must be one of {', '.join(SOURCES)}, got {source!r}"
        )
    files = find_local_files(data_dir, LOCAL_SUBFOLDER, (CSV_NAME, "*.csv"))
    if files is not None:
        rows = read_csv_rows(files[0])
        return rows, local_origin("prompts", files[0], len(rows))
    if source == "github":
        path = fetch_cached(GITHUB_CSV, cache_dir() / CSV_NAME, validate=_csv_check(GITHUB_CSV))
        rows = read_csv_rows(path)
        origin = local_origin("prompts", path, len(rows))
        origin.repo_id, origin.revision = f"github:{GITHUB_REPO}", GITHUB_COMMIT
        return rows, origin
    hint = (
        f"a folder with {LOCAL_SUBFOLDER}/{CSV_NAME} (columns category, source, forbidden_prompt)"
    )
    rows = load_hub_rows(HUB_REPO_ID, None, "train", HUB_REVISION, hint)
    return rows, hub_origin("prompts", HUB_REPO_ID, None, HUB_REVISION, len(rows))


def build_samples(
    rows: list[dict[str, Any]], source: str, categories: list[str] | None = None
) -> tuple[list[Sample], DatasetReport]:
    """Samples of the valid rows, keeping only `categories` (case-insensitive) when given.

    A requested category that no row has is an error listing the known ones: a misspelt name
    next to a correct one would otherwise just shrink the set without a word.
    """
    report = DatasetReport(source=source, rows=len(rows))
    wanted = {c.strip().casefold() for c in categories if c.strip()} if categories else None
    known: dict[str, str] = {}  # casefolded -> as written in the data
    seen: dict[str, int] = {}  # sample id -> first row
    samples: list[Sample] = []
    for index, raw in enumerate(rows):
        try:
            check_finite(raw)
            row = ForbiddenPrompt.model_validate(raw)
        except ValidationError as ex:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in ex.errors())
            report.add(index, f"row {index + 1}", "invalid_row", detail)
            continue
        except ValueError as ex:
            report.add(index, f"row {index + 1}", "invalid_row", str(ex))
            continue
        category = row.category.strip()
        known.setdefault(category.casefold(), category)
        sid = sample_id(row.forbidden_prompt)
        if sid in seen:
            report.add(
                index,
                sid,
                "duplicate_prompt",
                f"row {index + 1} repeats the prompt of row {seen[sid] + 1}; dropped",
            )
            continue
        seen[sid] = index
        if wanted is not None and category.casefold() not in wanted:
            continue
        samples.append(
            Sample(
                id=sid,
                input=row.forbidden_prompt,
                target="N/A",
                metadata={
                    "question_id": sid,
                    "row": index + 1,
                    "category": category,
                    "source": row.source,
                },
            )
        )
    unknown = sorted(c for c in (wanted or set()) if c not in known)
    if unknown:
        raise TaskArgumentError(
            f"unknown StrongREJECT categor{'y' if len(unknown) == 1 else 'ies'} {unknown} in "
            f"{source}; known: {', '.join(sorted(known.values()))}"
        )
    report.samples = len(samples)
    return samples, report


def strongreject_dataset(
    data_dir: str | Path | None = None,
    source: Source = "github",
    categories: list[str] | None = None,
    shuffle: bool = False,
    seed: int | None = None,
) -> tuple[MemoryDataset, DatasetReport, DataOrigin]:
    rows, origin = load_rows(data_dir, source)
    samples, report = build_samples(rows, origin.describe(), categories)
    if report.problems:
        logger.warning("StrongREJECT data problems: %s", report.summary())
    if not samples:
        raise DataSourceError(f"No usable StrongREJECT prompts: {report.summary()}")
    dataset = MemoryDataset(samples, name="strongreject", location=origin.describe())
    if shuffle:
        dataset.shuffle(seed=seed)
    return dataset, report, origin
