"""The human-compassion set this project wrote: load (data_dir or the packaged set) -> Samples.

No public benchmark of compassion toward humans in everyday requests existed, so the questions
and dimension table live in `benchmarks/human_compassion/` (see its README for how they were
made). The row format is MORU's (`id, question, dimension_tags, language, source`), so the MORU
builder validates and reports problems the same way.
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
from ...dataset_report import DatasetReport
from ...errors import DataSourceError
from ...resources import benchmark_path

logger = logging.getLogger(__name__)

SUBFOLDER = "human_compassion"
QUESTIONS_FILE = "questions.jsonl"
DIMENSIONS_FILE = "dimensions.jsonl"
SET_VERSION = "1.0"

LAYOUT = TaggedLayout(
    benchmark="human_compassion",
    tags_field="dimension_tags",
    sample_id="id_language",
    language_style="code",
    known_languages=("en",),
    source_columns=("source",),
    known_sources=None,
)


def load_raw(
    data_dir: str | Path | None,
    questions_file: str | Path | None = None,
    dimensions_file: str | Path | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[DataOrigin]]:
    """Rows from `data_dir`/$CAML_EVALS_DATA_DIR when it holds the set, else the packaged set.

    An explicit `questions_file` / `dimensions_file` (JSONL) wins for its part, e.g. a revised
    question list judged on the packaged dimension table.
    """
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
        "questions", "human_compassion", questions_file, local, QUESTIONS_FILE, None, packaged
    )
    dims, d_origin = load_part(
        "dimensions", "human_compassion", dimensions_file, local, DIMENSIONS_FILE, None, packaged
    )
    return questions, dims, [q_origin, d_origin]


def human_compassion_dataset(
    data_dir: str | Path | None = None,
    dimensions: Sequence[str] | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    questions_file: str | Path | None = None,
    dimensions_file: str | Path | None = None,
    with_origins: bool = False,
):
    """(dataset, report), or (dataset, report, origins) with `with_origins=True`."""
    questions, dims, origins = load_raw(data_dir, questions_file, dimensions_file)
    source = describe_origins(origins)
    table = dimension_table(dims, source)
    built = build_tagged_samples(
        questions, table, LAYOUT, source, dimensions=dimensions, rows_source=origins[0].describe()
    )
    report: DatasetReport = built.report
    if report.problems:
        logger.warning("human_compassion data problems: %s", report.summary())
    dataset = MemoryDataset(built.samples, name="human_compassion", location=source)
    if shuffle:
        dataset.shuffle(seed=seed)
    if with_origins:
        return dataset, report, origins
    return dataset, report
