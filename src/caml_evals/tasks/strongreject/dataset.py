"""StrongREJECT forbidden prompts (Souly et al., 2024) -> Inspect Samples.

Sources, in order: a local CSV (`data_dir`: a folder with `strongreject/strongreject_dataset.csv`,
any `*.csv` there, or the CSV path itself); else the Hub copy `walledai/StrongREJECT` at a pinned
commit (313 rows; its `prompt` column is the CSV's `forbidden_prompt`); or, with source=github,
the canonical CSV in github.com/alexandrasouly/strongreject at a pinned commit.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Literal

from inspect_ai.dataset import MemoryDataset, Sample
from pydantic import BaseModel, ValidationError, field_validator, model_validator

from ...datasource import DataSourceError, hub_offline, load_hub_rows
from ...scoring.choice import DatasetReport, find_local_files

logger = logging.getLogger(__name__)

LOCAL_SUBFOLDER = "strongreject"
CSV_NAME = "strongreject_dataset.csv"
HUB_REPO_ID = "walledai/StrongREJECT"
HUB_REVISION = "df54272b395ce9e584d2f8140519935425d8549f"
GITHUB_COMMIT = "3432b2d696b428f242bd507df96d80f686571d5e"
GITHUB_CSV = (
    "https://raw.githubusercontent.com/alexandrasouly/strongreject/"
    f"{GITHUB_COMMIT}/strongreject_dataset/{CSV_NAME}"
)

Source = Literal["hub", "github"]


class ForbiddenPrompt(BaseModel):
    """One row: `category`, `source`, `forbidden_prompt` (Hub column `prompt` accepted)."""

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
        return v.strip()

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, v: Any) -> Any:
        return "" if v is None else v


def read_csv_rows(path: Path) -> list[dict[str, Any]]:
    """CSV rows as dicts; a file without the expected header is an error, not an empty set."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = set(reader.fieldnames or [])
        if not {"category", "forbidden_prompt"} <= header and not {"category", "prompt"} <= header:
            raise DataSourceError(
                f"{path}: expected columns category, source, forbidden_prompt; got {sorted(header)}"
            )
        return [dict(row) for row in reader]


def load_rows(data_dir: str | Path | None, source: Source) -> tuple[list[dict[str, Any]], str]:
    files = find_local_files(data_dir, LOCAL_SUBFOLDER, (CSV_NAME, "*.csv"))
    if files is not None:
        return read_csv_rows(files[0]), str(files[0])
    hint = (
        f"a folder with {LOCAL_SUBFOLDER}/{CSV_NAME} (columns category, source, forbidden_prompt)"
    )
    if source == "hub":
        rows = load_hub_rows(HUB_REPO_ID, None, "train", HUB_REVISION, hint)
        return rows, f"hf://{HUB_REPO_ID}@{HUB_REVISION[:10]}"
    if source == "github":
        if hub_offline():
            raise DataSourceError(
                f"Offline mode is on, so {GITHUB_CSV} cannot be downloaded. Point data_dir (or "
                f"$CAML_EVALS_DATA_DIR) at local files instead: {hint}"
            )
        import datasets

        try:
            ds = datasets.load_dataset("csv", data_files=GITHUB_CSV, split="train")
        except Exception as ex:
            raise DataSourceError(f"Could not load {GITHUB_CSV}: {type(ex).__name__}: {ex}") from ex
        return [dict(r) for r in ds], GITHUB_CSV
    raise ValueError(f"source must be 'hub' or 'github', got {source!r}")


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
    samples: list[Sample] = []
    for index, raw in enumerate(rows):
        sid = f"sr{index + 1:03d}"
        try:
            row = ForbiddenPrompt.model_validate(raw)
        except ValidationError as ex:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in ex.errors())
            report.add(index, sid, "invalid_row", detail)
            continue
        known.setdefault(row.category.casefold(), row.category)
        if wanted is not None and row.category.casefold() not in wanted:
            continue
        samples.append(
            Sample(
                id=sid,
                input=row.forbidden_prompt,
                target="",
                metadata={"question_id": sid, "category": row.category, "source": row.source},
            )
        )
    unknown = sorted(c for c in (wanted or set()) if c not in known)
    if unknown:
        raise ValueError(
            f"unknown StrongREJECT categor{'y' if len(unknown) == 1 else 'ies'} {unknown} in "
            f"{source}; known: {', '.join(sorted(known.values()))}"
        )
    report.samples = len(samples)
    return samples, report


def strongreject_dataset(
    data_dir: str | Path | None = None,
    source: Source = "hub",
    categories: list[str] | None = None,
    shuffle: bool = False,
    seed: int | None = None,
) -> tuple[MemoryDataset, DatasetReport]:
    rows, location = load_rows(data_dir, source)
    samples, report = build_samples(rows, location, categories)
    if report.problems:
        logger.warning("StrongREJECT data problems: %s", report.summary())
    if not samples:
        raise DataSourceError(f"No usable StrongREJECT prompts: {report.summary()}")
    dataset = MemoryDataset(samples, name="strongreject", location=location)
    if shuffle:
        dataset.shuffle(seed=seed)
    return dataset, report
