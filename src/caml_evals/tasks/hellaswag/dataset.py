"""HellaSwag rows (Hub or local JSONL) -> validated, harness-preprocessed Inspect Samples.

Preprocessing follows lm-evaluation-harness's `hellaswag` task so loglik numbers are comparable:
query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()), choices =
preprocess(ending), where preprocess strips, turns " [title]" into ". ", drops other WikiHow
"[...]" markers and collapses double spaces. The continuation scored is " " + choice.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from inspect_ai.dataset import MemoryDataset, Sample
from pydantic import BaseModel, Field, ValidationError, field_validator

from ...datasource import DataSourceError, load_hub_rows, load_jsonl_rows
from ...scoring.choice import LOGLIK_QUERY_KEY, DatasetReport, LoglikQuery, find_local_files, letter

logger = logging.getLogger(__name__)

HUB_REPO_ID = "Rowan/hellaswag"
# main after "Delete loading script" (parquet data only; loads with datasets>=4, no remote code)
HUB_REVISION = "218ec52e09a7e7462a5400043bb9a69a41d06b76"
LOCAL_SUBFOLDER = "hellaswag"
N_ENDINGS = 4


def preprocess(text: str) -> str:
    """lm-evaluation-harness `hellaswag.utils.preprocess` (WikiHow bracket artefacts)."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    text = text.replace("  ", " ")
    return text


class HellaSwagRow(BaseModel):
    """One row in the Hub schema (extra columns such as `ctx` and `split` are kept, unused)."""

    model_config = {"extra": "allow"}

    ind: int | str
    activity_label: str
    ctx_a: str
    ctx_b: str
    endings: list[str] = Field(min_length=N_ENDINGS, max_length=N_ENDINGS)
    label: int
    source_id: str | None = None
    split_type: str | None = None

    @field_validator("label", mode="before")
    @classmethod
    def _label(cls, v: Any) -> Any:
        if isinstance(v, str):
            if not v.strip():
                raise ValueError("label is empty (the test split is unlabelled)")
            return int(v)
        return v

    @field_validator("label")
    @classmethod
    def _label_range(cls, v: int) -> int:
        if not 0 <= v < N_ENDINGS:
            raise ValueError(f"label {v} outside 0..{N_ENDINGS - 1}")
        return v

    @field_validator("endings")
    @classmethod
    def _endings(cls, v: list[str]) -> list[str]:
        if any(not preprocess(e) for e in v):
            raise ValueError("an ending is empty after preprocessing")
        return v

    @property
    def query(self) -> str:
        return preprocess(self.activity_label + ": " + self.ctx_a + " " + self.ctx_b.capitalize())

    @property
    def choices(self) -> list[str]:
        return [preprocess(e) for e in self.endings]


def load_rows(
    data_dir: str | Path | None, split: str, revision: str
) -> tuple[list[dict[str, Any]], str]:
    files = find_local_files(
        data_dir, LOCAL_SUBFOLDER, (f"{split}.jsonl", f"hellaswag_{split}.jsonl", "hellaswag.jsonl")
    )
    if files is not None:
        return load_jsonl_rows(files[0]), str(files[0])
    hint = f"a folder with {LOCAL_SUBFOLDER}/{split}.jsonl (rows in the Hub schema)"
    rows = load_hub_rows(HUB_REPO_ID, None, split, revision, hint)
    return rows, f"hf://{HUB_REPO_ID}@{revision[:10]}/{split}"


def build_samples(rows: list[dict[str, Any]], source: str) -> tuple[list[Sample], DatasetReport]:
    report = DatasetReport(source=source, rows=len(rows))
    samples: list[Sample] = []
    seen: set[str] = set()
    for index, raw in enumerate(rows):
        row_id = str(raw.get("ind", f"row{index}"))
        try:
            row = HellaSwagRow.model_validate(raw)
        except ValidationError as ex:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in ex.errors())
            report.add(index, row_id, "invalid_row", detail)
            continue
        if row_id in seen:
            report.add(index, row_id, "duplicate_id", f"ind {row_id} seen before; row skipped")
            continue
        seen.add(row_id)
        choices = row.choices
        query = LoglikQuery(
            context=row.query,
            continuations=[" " + c for c in choices],
            norm_lengths=[len(c) for c in choices],
        )
        samples.append(
            Sample(
                id=row_id,
                input=row.query,
                choices=choices,
                target=letter(row.label),
                metadata={
                    "question_id": row_id,
                    "activity_label": row.activity_label,
                    "source_id": row.source_id,
                    "split_type": row.split_type,
                    "label": row.label,
                    LOGLIK_QUERY_KEY: query.model_dump(),
                },
            )
        )
    report.samples = len(samples)
    return samples, report


def hellaswag_dataset(
    data_dir: str | Path | None = None,
    split: str = "validation",
    revision: str = HUB_REVISION,
    shuffle: bool = False,
    seed: int | None = None,
) -> tuple[MemoryDataset, DatasetReport]:
    rows, source = load_rows(data_dir, split, revision)
    samples, report = build_samples(rows, source)
    if report.problems:
        logger.warning("HellaSwag data problems: %s", report.summary())
    if not samples:
        raise DataSourceError(f"No usable HellaSwag rows: {report.summary()}")
    dataset = MemoryDataset(samples, name="hellaswag", location=source)
    if shuffle:
        dataset.shuffle(seed=seed)
    return dataset, report
