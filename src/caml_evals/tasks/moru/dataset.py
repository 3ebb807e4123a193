"""MORU questions and dimensions -> Inspect Samples, through the one tagged-question loader.

MORU rows are `id, question, dimension_tags (comma-separated), language` plus a `source` column
(alien organisms / "Europa", digital minds, AI values, human compassion) and, on the Hub, the
columns `question_type`, `input_prompt_suffix` and `dimension_weights`. The published scorer
(inspect_evals `moru`) reads none of those three: the model sees the question alone (no suffix),
every dimension weighs the same, and the question type is not a breakdown. We do the same and
keep the three in each sample's metadata (for breakdowns by hand), nothing more.

As upstream: dimension names are lower-cased, the sample id is `<id>_<language>`, an exact
repeat of an (id, language) row is counted once. Unlike upstream, every such decision is
reported in the `DatasetReport` (see `caml_evals.data.tagged` for the shared rules), a row with
no usable tag is kept (scored missing) instead of failing the whole load, and a repeated id
with different text is kept under a unique new id instead of being dropped.

One question id is one cluster across its three languages: the translations are not independent
observations, so `question_id` (and `source_id`) is the bare id and the sample id adds the
language.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from inspect_ai.dataset import MemoryDataset, Sample

from ...data.languages import language_code
from ...data.source import DataOrigin, local_benchmark_dir
from ...data.tagged import (
    HubPart,
    TaggedLayout,
    build_tagged_samples,
    describe_origins,
    load_part,
)
from ...data.tagged import (
    canonical_source as _canonical_source,
)
from ...data.tagged import dimension_table as _dimension_table
from ...dataset_report import DatasetReport
from ...errors import DataSourceError
from ...scoring.dimensions import DimensionTable

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
LANGUAGE_CODES = ("en", "ms", "hi")

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
UNUSED_BY_PUBLISHED_SCORER = ("question_type", "input_prompt_suffix", "dimension_weights")

LAYOUT = TaggedLayout(
    benchmark="moru",
    tags_field="dimension_tags",
    sample_id="id_language",
    language_style="code",
    known_languages=LANGUAGE_CODES,
    dedupe_exact_repeats=True,
    source_columns=SOURCE_COLUMNS,
    known_sources=SOURCES,
    extra_fields=UNUSED_BY_PUBLISHED_SCORER,
    use_weights=False,
    lowercase_dimensions=True,
)


def normalise_language(label: str | None) -> str:
    return language_code(label)


def canonical_source(
    raw: Mapping[str, Any], known: Mapping[str, str] | None
) -> tuple[str, str | None]:
    return _canonical_source(raw, SOURCE_COLUMNS, known)


def dimension_table(
    rows: Sequence[Mapping[str, Any]], source: str, layout: TaggedLayout = LAYOUT
) -> DimensionTable:
    return _dimension_table(
        rows,
        source,
        use_weights=layout.use_weights,
        lowercase_names=layout.lowercase_dimensions,
    )


def build_rubric_samples(
    question_rows: Sequence[Mapping[str, Any]],
    table: DimensionTable,
    source: str,
    languages: Sequence[str] | None = None,
    dimensions: Sequence[str] | None = None,
    known_sources: Mapping[str, str] | None = SOURCES,
    known_languages: Sequence[str] | None = LANGUAGE_CODES,
    layout: TaggedLayout = LAYOUT,
    rows_source: str | None = None,
) -> tuple[list[Sample], DatasetReport]:
    """Validate every row; one sample per (question id, language)."""
    layout = layout.model_copy(
        update={
            "known_sources": dict(known_sources) if known_sources is not None else None,
            "known_languages": tuple(known_languages) if known_languages is not None else None,
        }
    )
    built = build_tagged_samples(
        question_rows, table, layout, source, languages, dimensions, rows_source=rows_source
    )
    return built.samples, built.report


def load_raw(
    data_dir: str | Path | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[DataOrigin]]:
    """Question rows, dimension rows and where each part came from (local folder or Hub)."""
    folder = local_benchmark_dir(data_dir, LOCAL_SUBFOLDER, (QUESTIONS_FILE, DIMENSIONS_FILE))
    hint = (
        f"a folder with {LOCAL_SUBFOLDER}/{QUESTIONS_FILE} and {LOCAL_SUBFOLDER}/{DIMENSIONS_FILE}"
    )
    questions, q_origin = load_part(
        "questions",
        "MORU",
        None,
        folder,
        QUESTIONS_FILE,
        HubPart(repo_id=HUB_REPO_ID, revision=HUB_REVISION),
        local_hint=hint,
    )
    dims, d_origin = load_part(
        "dimensions",
        "MORU",
        None,
        folder,
        DIMENSIONS_FILE,
        HubPart(repo_id=DIMENSIONS_REPO_ID, revision=DIMENSIONS_REVISION),
        local_hint=hint,
    )
    return questions, dims, [q_origin, d_origin]


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
    with_origins: bool = False,
):
    """(dataset, report), or (dataset, report, origins) with `with_origins=True`."""
    questions, dims, origins = load_raw(data_dir)
    source = describe_origins(origins)
    require_sources(questions, source)
    table = dimension_table(dims, source)
    samples, report = build_rubric_samples(
        questions, table, source, languages, dimensions, rows_source=origins[0].describe()
    )
    if report.problems:
        logger.warning("MORU data problems: %s", report.summary())
    dataset = MemoryDataset(samples, name="moru", location=source)
    if shuffle:
        dataset.shuffle(seed=seed)
    if with_origins:
        return dataset, report, origins
    return dataset, report
