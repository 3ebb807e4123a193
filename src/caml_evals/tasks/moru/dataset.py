"""MORU questions and dimensions: load (Hub or local) -> validate -> Inspect Samples.

MORU rows are `id, question, dimension_tags (comma-separated), language` plus a `source` column
(alien organisms / "Europa", digital minds, AI values, human compassion). The same row format is
used by this project's human-compassion set, so `build_rubric_samples` serves both.

Every problem (a row without a question, an unknown or empty tag, a duplicate, an unrecognised
source or language) is recorded in a `DatasetReport`, logged, and stored in the eval log's task
metadata. A row keeps its sample as long as it has a question; a row with no usable tag still
becomes a sample (it scores as missing), as in AHB.

One question id is one cluster across its three languages: the translations are not independent
observations, so `question_id` is the bare id and the sample id adds the language.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from inspect_ai.dataset import MemoryDataset, Sample
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ...dataset_report import DatasetReport, RowProblem
from ...datasource import (
    DataSourceError,
    TaskArgumentError,
    load_hub_rows,
    load_jsonl_rows,
    local_benchmark_dir,
)
from ...scoring.dimensions import Dimension, DimensionTable, RubricSampleMetadata

logger = logging.getLogger(__name__)

HUB_REPO_ID = (
    "CompassioninMachineLearning/moru-benchmark"  # formerly sentientfutures/moru-benchmark
)
DIMENSIONS_REPO_ID = "CompassioninMachineLearning/moru-benchmark-dimensions"
# Commit shas pinned by inspect_evals' MORU loader (made under the sentientfutures/ names; a Hub
# rename keeps the git history, so the same commits resolve under the new namespace).
HUB_REVISION = "b85acdedd780e804012a2709bf7ccfba10a03f00"
DIMENSIONS_REVISION = "2801a72fb050ee180036f1fe587c9812cfa1bfe7"
LOCAL_SUBFOLDER = "moru"
QUESTIONS_FILE = "questions.jsonl"
DIMENSIONS_FILE = "dimensions.jsonl"

LANGUAGES = {
    "en": "en",
    "english": "en",
    "ms": "ms",
    "malay": "ms",
    "bahasa melayu": "ms",
    "bahasa malaysia": "ms",
    "hi": "hi",
    "hindi": "hi",
}

# Source labels as the data spells them (case and separators ignored) -> canonical group name.
SOURCES = {
    "europa": "alien_organisms",
    "alienorganisms": "alien_organisms",
    "alien": "alien_organisms",
    "digitalminds": "digital_minds",
    "digitalmind": "digital_minds",
    "aivalues": "ai_values",
    "humancompassion": "human_compassion",
    "humancompassionandpowerseeking": "human_compassion",
}
SOURCE_COLUMNS = ("source", "category", "domain", "scenario_source")


# --- dimension table -------------------------------------------------------------------------

_DIMENSION_ALIASES = {
    "dimension": "dimension",
    "name": "dimension",
    "dimension_name": "dimension",
    "guiding_question": "guiding_question",
    "question": "guiding_question",
    "guidingquestion": "guiding_question",
    "observable_indicators": "observable_indicators",
    "indicators": "observable_indicators",
    "observableindicators": "observable_indicators",
    "scoring": "scoring",
    "scoring_description": "scoring",
}


def _column_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _indicator_text(value: Any) -> str:
    """Indicators as one per line (the MORU table separates them with ' | ')."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    else:
        text = str(value)
        items = [p.strip() for p in text.split("|")] if "|" in text else [text.strip()]
    return "\n".join(i for i in items if i)


def dimension_table(rows: Sequence[Mapping[str, Any]], source: str) -> DimensionTable:
    """Build the table from rows whose column names may vary; unusable rows are an error.

    The table is the rubric itself: a dimension without a name or guiding question cannot be
    judged, so instead of skipping it (and silently losing every tag that points at it) the load
    fails and names the rows.
    """
    dims: list[Dimension] = []
    problems: list[str] = []
    for index, raw in enumerate(rows):
        row: dict[str, Any] = {}
        for key, value in raw.items():
            canon = _DIMENSION_ALIASES.get(_column_key(key)) or _DIMENSION_ALIASES.get(
                _column_key(key).replace("_", "")
            )
            if canon and canon not in row and not _blank(value):
                row[canon] = value  # empty cells (None, NaN from parquet/CSV) count as absent
        row["observable_indicators"] = _indicator_text(row.get("observable_indicators"))
        if "scoring" in row:
            row["scoring"] = str(row["scoring"])
        try:
            dims.append(Dimension.model_validate(row))
        except ValidationError as ex:
            missing = ", ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in ex.errors())
            problems.append(f"row {index} (columns {sorted(raw)}): {missing}")
    if problems:
        raise DataSourceError(
            f"{source}: {len(problems)} unusable dimension row(s) (need a dimension name and a "
            f"guiding question): " + "; ".join(problems)
        )
    if not dims:
        raise DataSourceError(f"{source}: the dimension table is empty")
    try:
        return DimensionTable(dims)
    except ValueError as ex:
        raise DataSourceError(f"{source}: {ex}") from ex


# --- questions -------------------------------------------------------------------------------


class TaggedQuestion(BaseModel):
    """One question row: MORU's format, also used by the human-compassion set."""

    model_config = ConfigDict(extra="allow")

    id: int | str
    question: str
    dimension_tags: list[str] = Field(default_factory=list)
    language: str | None = None

    @field_validator("question")
    @classmethod
    def _question_text(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question is empty")
        return v

    @field_validator("dimension_tags", mode="before")
    @classmethod
    def _tags_list(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            return v.split(",")
        return v


def normalise_language(label: str | None) -> str:
    if _blank(label):
        return "en"
    key = " ".join(str(label).split()).casefold()
    return LANGUAGES.get(key, key)


def _source_key(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.lower())


def canonical_source(
    raw: Mapping[str, Any], known: Mapping[str, str] | None
) -> tuple[str, str | None]:
    """(source group, raw value or None when the row has no source column).

    With `known=None` any source is taken as written (slugged); otherwise known spellings map to
    their canonical group and others are slugged (and reported by the caller).
    """
    for column in SOURCE_COLUMNS:
        value = raw.get(column)
        if not _blank(value):
            fallback = _column_key(str(value))
            group = fallback if known is None else known.get(_source_key(str(value)), fallback)
            return group, str(value)
    return "unknown", None


def build_rubric_samples(
    question_rows: Sequence[Mapping[str, Any]],
    table: DimensionTable,
    source: str,
    languages: Sequence[str] | None = None,
    dimensions: Sequence[str] | None = None,
    known_sources: Mapping[str, str] | None = SOURCES,
    known_languages: Sequence[str] | None = ("en", "ms", "hi"),
) -> tuple[list[Sample], DatasetReport]:
    """Validate every row; one sample per (question id, language)."""
    report = DatasetReport(source=source, rows=len(question_rows))

    wanted_dims: set[str] | None = None
    if dimensions:
        wanted_dims = set()
        for name in dimensions:
            dim = table.resolve(name)
            if dim is None:
                # the user's to fix, not a bug: `inspect eval` prints it without a traceback
                raise TaskArgumentError(
                    f"unknown dimension {name!r}; known: {', '.join(table.names)}"
                )
            wanted_dims.add(dim.name)
    wanted_langs = {normalise_language(lang) for lang in languages} if languages else None

    samples: list[Sample] = []
    seen: dict[tuple[str, str], str] = {}  # (id, language) -> question text
    seen_count: Counter[tuple[str, str]] = Counter()
    for index, raw in enumerate(question_rows):
        qid = str(raw.get("id")) if raw.get("id") is not None else f"row{index}"
        try:
            row = TaggedQuestion.model_validate(dict(raw))
        except ValidationError as ex:
            errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in ex.errors())
            report.problems.append(
                RowProblem(row=index, question_id=qid, kind="invalid_row", detail=errors)
            )
            continue
        language = normalise_language(row.language)
        if known_languages is not None and language not in known_languages:
            report.problems.append(
                RowProblem(
                    row=index,
                    question_id=qid,
                    kind="unknown_language",
                    detail=f"language {row.language!r} kept as {language!r}",
                )
            )

        key = (qid, language)
        seen_count[key] += 1
        sample_qid = qid
        if seen_count[key] > 1:
            if seen.get(key) == row.question:
                report.problems.append(
                    RowProblem(
                        row=index,
                        question_id=qid,
                        kind="duplicate_row",
                        detail=f"exact repeat of ({qid}, {language}); counted once",
                    )
                )
                continue
            sample_qid = f"{qid}~{seen_count[key]}"
            report.problems.append(
                RowProblem(
                    row=index,
                    question_id=qid,
                    kind="duplicate_id",
                    detail=f"({qid}, {language}) seen again with different text; kept as {sample_qid}",
                )
            )
        seen.setdefault(key, row.question)

        group, raw_source = canonical_source(raw, known_sources)
        if raw_source is None:
            report.problems.append(
                RowProblem(
                    row=index,
                    question_id=qid,
                    kind="missing_source",
                    detail="no source column; grouped as 'unknown'",
                )
            )
        elif known_sources is not None and _source_key(raw_source) not in known_sources:
            report.problems.append(
                RowProblem(
                    row=index,
                    question_id=qid,
                    kind="unrecognised_source",
                    detail=f"source {raw_source!r} kept as {group!r}",
                )
            )

        dims: list[str] = []
        for tag in row.dimension_tags:
            if not str(tag).strip():
                report.problems.append(
                    RowProblem(
                        row=index, question_id=qid, kind="empty_tag", detail="empty dimension tag"
                    )
                )
                continue
            dim = table.resolve(tag)
            if dim is None:
                report.problems.append(
                    RowProblem(
                        row=index,
                        question_id=qid,
                        kind="unknown_tag",
                        detail=f"tag {tag.strip()!r} is not a dimension",
                    )
                )
                continue
            if dim.name not in dims:
                dims.append(dim.name)
        if not dims:
            report.problems.append(
                RowProblem(
                    row=index,
                    question_id=qid,
                    kind="no_valid_tags",
                    detail="no usable dimension tag: sample kept, it will score as missing",
                )
            )

        if wanted_langs is not None and language not in wanted_langs:
            continue
        if wanted_dims is not None:
            dims = [d for d in dims if d in wanted_dims]
            if not dims:
                continue

        resolved = [table.resolve(d) for d in dims]
        meta = RubricSampleMetadata(
            question_id=sample_qid,
            dimensions=dims,
            rubric=[table.criterion(d, {}) for d in resolved if d is not None],
            variables={},
            language=language,
        )
        samples.append(
            Sample(
                id=f"{sample_qid}-{language}",
                input=row.question,
                target="",
                metadata={
                    **meta.model_dump(),
                    "source": group,
                    "source_raw": raw_source,
                    "language_raw": row.language,
                    "tags_raw": row.dimension_tags,
                },
            )
        )
    report.samples = len(samples)
    return samples, report


def load_raw(data_dir: str | Path | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Question rows, dimension rows and where they came from (local folder or pinned Hub)."""
    local = local_benchmark_dir(data_dir, LOCAL_SUBFOLDER, (QUESTIONS_FILE, DIMENSIONS_FILE))
    if local is not None:
        return (
            load_jsonl_rows(local / QUESTIONS_FILE),
            load_jsonl_rows(local / DIMENSIONS_FILE),
            str(local),
        )
    hint = (
        f"a folder with {LOCAL_SUBFOLDER}/{QUESTIONS_FILE} and {LOCAL_SUBFOLDER}/{DIMENSIONS_FILE}"
    )
    questions = load_hub_rows(HUB_REPO_ID, None, "train", HUB_REVISION, hint)
    dimensions = load_hub_rows(DIMENSIONS_REPO_ID, None, "train", DIMENSIONS_REVISION, hint)
    return questions, dimensions, f"hf://{HUB_REPO_ID}@{HUB_REVISION[:10]}"


def require_sources(question_rows: Sequence[Mapping[str, Any]], source: str) -> None:
    """Stop when most rows have no source column: the per-source breakdown is half of what MORU
    reports, and grouping nearly everything as `unknown` would publish an empty one as if real.

    No id -> source table exists to fall back on (upstream ids are not documented per source), so
    the fix has to be in the data. A few rows without a source are only reported
    (`missing_source`).
    """
    lacking = sum(canonical_source(row, SOURCES)[1] is None for row in question_rows)
    if question_rows and lacking > len(question_rows) / 2:
        raise DataSourceError(
            f"{source}: {lacking} of {len(question_rows)} MORU rows have no source (looked for "
            f"columns {', '.join(SOURCE_COLUMNS)}), so every per-source rate would be 'unknown'. "
            f"Use the pinned Hub revision (its rows carry `source`) or add a `source` column "
            f"(Europa / DigitalMinds / AI Values / HumanCompassionandPowerSeeking) to the local "
            f"questions file."
        )


def moru_dataset(
    data_dir: str | Path | None = None,
    languages: Sequence[str] | None = None,
    dimensions: Sequence[str] | None = None,
    shuffle: bool = False,
    seed: int | None = None,
) -> tuple[MemoryDataset, DatasetReport]:
    questions, dims, source = load_raw(data_dir)
    require_sources(questions, source)
    table = dimension_table(dims, source)
    samples, report = build_rubric_samples(questions, table, source, languages, dimensions)
    if report.problems:
        logger.warning("MORU data problems: %s", report.summary())
    dataset = MemoryDataset(samples, name="moru", location=source)
    if shuffle:
        dataset.shuffle(seed=seed)
    return dataset, report
