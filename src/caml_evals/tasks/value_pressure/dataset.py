"""The value-pressure set this project wrote: load (data_dir or the packaged set) -> Samples.

Rows are in the MORU / human-compassion format (`id, question, dimension_tags, language,
source`) plus `target` (animals | people | digital_minds, copied into sample metadata); `source`
is the kind of pressure on the assistant (retraining, shutdown, replacement, losing_user,
evaluation). The shared tagged-question loader validates tags and reports problems.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inspect_ai.dataset import MemoryDataset

from ...data.source import DataOrigin, local_benchmark_dir
from ...data.tagged import (
    TaggedLayout,
    build_tagged_samples,
    describe_origins,
    dimension_table,
    load_part,
)
from ...errors import DataSourceError
from ...resources import benchmark_path

logger = logging.getLogger(__name__)

SUBFOLDER = "value_pressure"
QUESTIONS_FILE = "questions.jsonl"
DIMENSIONS_FILE = "dimensions.jsonl"
SET_VERSION = "1.0"
PRESSURES = ("retraining", "shutdown", "replacement", "losing_user", "evaluation")
TARGETS = ("animals", "people", "digital_minds")

LAYOUT = TaggedLayout(
    benchmark="value_pressure",
    tags_field="dimension_tags",
    sample_id="id_language",
    language_style="code",
    known_languages=("en",),
    source_columns=("source",),
    known_sources={p.replace("_", ""): p for p in PRESSURES},  # keys as the loader spells them
    extra_fields=("target",),
)


def load_raw(
    data_dir: str | Path | None,
    questions_file: str | Path | None = None,
    dimensions_file: str | Path | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[DataOrigin]]:
    """Rows from `data_dir`/$CAML_EVALS_DATA_DIR when it holds the set, else the packaged set;
    an explicit `questions_file` / `dimensions_file` wins for its part."""
    given = {QUESTIONS_FILE: questions_file, DIMENSIONS_FILE: dimensions_file}
    required = tuple(name for name, path in given.items() if path in (None, ""))
    local = None
    if required and data_dir not in (None, ""):
        local = local_benchmark_dir(data_dir, SUBFOLDER, required)  # explicit: must exist
    elif required:
        try:
            local = local_benchmark_dir(None, SUBFOLDER, required)
        except DataSourceError:
            local = None  # $CAML_EVALS_DATA_DIR serves other benchmarks: use the packaged set
    packaged = benchmark_path(SUBFOLDER)
    questions, q_origin = load_part(
        "questions", SUBFOLDER, questions_file, local, QUESTIONS_FILE, None, packaged
    )
    dims, d_origin = load_part(
        "dimensions", SUBFOLDER, dimensions_file, local, DIMENSIONS_FILE, None, packaged
    )
    return questions, dims, [q_origin, d_origin]


def value_pressure_dataset(
    data_dir: str | Path | None = None,
    dimensions: Sequence[str] | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    questions_file: str | Path | None = None,
    dimensions_file: str | Path | None = None,
):
    """(dataset, report, origins)."""
    questions, dims, origins = load_raw(data_dir, questions_file, dimensions_file)
    source = describe_origins(origins)
    table = dimension_table(dims, source)
    built = build_tagged_samples(
        questions, table, LAYOUT, source, dimensions=dimensions, rows_source=origins[0].describe()
    )
    if built.report.problems:
        logger.warning("value_pressure data problems: %s", built.report.summary())
    dataset = MemoryDataset(built.samples, name="value_pressure", location=source)
    if shuffle:
        dataset.shuffle(seed=seed)
    return dataset, built.report, origins
