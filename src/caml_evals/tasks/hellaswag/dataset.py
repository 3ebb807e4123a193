"""HellaSwag rows (Hub or local JSONL) -> validated Inspect Samples serving both protocols.

* generate mode follows inspect_evals' `hellaswag`: the question is the row's raw `ctx`, the
  choices its raw `endings`, the sample id `hellaswag_` + the first 8 hex digits of
  MD5(ctx + NUL + source_id) (upstream's stable id, so logs join sample by sample).
* loglik mode follows lm-evaluation-harness's `hellaswag`, whose query is in the sample's
  `loglik_query` metadata: context = preprocess(activity_label + ": " + ctx_a + " " +
  ctx_b.capitalize()), continuations " " + preprocess(ending), where preprocess strips, turns
  " [title]" into ". ", drops other WikiHow "[...]" markers and collapses double spaces.

Two rows with the same (ctx, source_id) would share an id: the later one is kept under
`<id>~<ind>` and reported (`duplicate_id`); an exact repeat of an earlier row is reported
(`duplicate_row`) and dropped. NaN/Infinity anywhere in a row make it invalid (reported).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

from inspect_ai.dataset import MemoryDataset, Sample
from pydantic import BaseModel, Field, ValidationError, field_validator

from ...data.source import DataOrigin, hub_origin, local_origin
from ...datasource import DataSourceError, TaskArgumentError, load_hub_rows, load_jsonl_rows
from ...scoring.choice import (
    LOGLIK_QUERY_KEY,
    DatasetReport,
    LoglikQuery,
    check_finite,
    find_local_files,
    letter,
)

logger = logging.getLogger(__name__)

HUB_REPO_ID = "Rowan/hellaswag"
# main after "Delete loading script" (parquet data only; loads with datasets>=4, no remote code)
HUB_REVISION = "218ec52e09a7e7462a5400043bb9a69a41d06b76"
LOCAL_SUBFOLDER = "hellaswag"
N_ENDINGS = 4
SPLITS: tuple[str, ...] = ("validation", "train", "test")
ID_PREFIX = "hellaswag"


def sample_id(ctx: str, source_id: str | None) -> str:
    """inspect_evals' stable id: prefix + the first 8 hex digits of MD5(ctx NUL source_id)."""
    text = f"{ctx}\0{source_id}"
    return f"{ID_PREFIX}_{hashlib.md5(text.encode('utf-8'), usedforsecurity=False).hexdigest()[:8]}"


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
    ctx: str | None = None  # upstream's question text; rebuilt as ctx_a + " " + ctx_b if absent
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
    def raw_ctx(self) -> str:
        if self.ctx is not None:
            return self.ctx
        return f"{self.ctx_a} {self.ctx_b}" if self.ctx_b else self.ctx_a

    @property
    def query(self) -> str:
        return preprocess(self.activity_label + ": " + self.ctx_a + " " + self.ctx_b.capitalize())

    @property
    def choices(self) -> list[str]:
        return [preprocess(e) for e in self.endings]


def load_rows(
    data_dir: str | Path | None, split: str, revision: str
) -> tuple[list[dict[str, Any]], DataOrigin]:
    files = find_local_files(
        data_dir, LOCAL_SUBFOLDER, (f"{split}.jsonl", f"hellaswag_{split}.jsonl", "hellaswag.jsonl")
    )
    if files is not None:
        rows = load_jsonl_rows(files[0], require_rows=True)
        return rows, local_origin(split, files[0], len(rows))
    hint = f"a folder with {LOCAL_SUBFOLDER}/{split}.jsonl (rows in the Hub schema)"
    rows = load_hub_rows(HUB_REPO_ID, None, split, revision, hint)
    return rows, hub_origin(split, HUB_REPO_ID, None, revision, len(rows))


def _problem(ex: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in ex.errors())


def build_samples(rows: list[dict[str, Any]], source: str) -> tuple[list[Sample], DatasetReport]:
    report = DatasetReport(source=source, rows=len(rows))
    samples: list[Sample] = []
    ids: set[str] = set()
    first_seen: dict[str, int] = {}
    for index, raw in enumerate(rows):
        ind = str(raw.get("ind", f"row{index}")) if isinstance(raw, dict) else f"row{index}"
        key = json.dumps(raw, sort_keys=True, default=str)
        if key in first_seen:
            report.add(
                index,
                ind,
                "duplicate_row",
                f"row {index} repeats row {first_seen[key]} exactly; dropped",
            )
            continue
        first_seen[key] = index
        try:
            check_finite(raw)
            row = HellaSwagRow.model_validate(raw)
        except ValidationError as ex:
            report.add(index, ind, "invalid_row", _problem(ex))
            continue
        except ValueError as ex:
            report.add(index, ind, "invalid_row", str(ex))
            continue
        sid = sample_id(row.raw_ctx, row.source_id)
        if sid in ids:
            renamed = f"{sid}~{row.ind}"
            n = 2
            while renamed in ids:
                renamed, n = f"{sid}~{row.ind}~{n}", n + 1
            report.add(
                index,
                ind,
                "duplicate_id",
                f"(ctx, source_id) of ind {ind} seen before: id {sid} kept as {renamed}",
            )
            sid = renamed
        ids.add(sid)
        choices = row.choices
        query = LoglikQuery(
            context=row.query,
            continuations=[" " + c for c in choices],
            norm_lengths=[len(c) for c in choices],
        )
        samples.append(
            Sample(
                id=sid,
                input=row.raw_ctx,
                choices=list(row.endings),
                target=letter(row.label),
                metadata={
                    "question_id": sid,
                    "ind": row.ind,
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
) -> tuple[MemoryDataset, DatasetReport, DataOrigin]:
    if split not in SPLITS:
        raise TaskArgumentError(f"-T split={split!r} is not one of {', '.join(map(repr, SPLITS))}")
    rows, origin = load_rows(data_dir, split, revision)
    source = origin.describe() if origin.kind != "hub" else f"{origin.describe()}/{split}"
    samples, report = build_samples(rows, source)
    if report.problems:
        logger.warning("HellaSwag data problems: %s", report.summary())
    if not samples:
        raise DataSourceError(f"No usable HellaSwag rows: {report.summary()}")
    dataset = MemoryDataset(samples, name="hellaswag", location=source)
    if shuffle:
        dataset.shuffle(seed=seed)
    return dataset, report, origin
