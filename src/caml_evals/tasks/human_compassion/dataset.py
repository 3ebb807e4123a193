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

from ...dataset_report import DatasetReport
from ...datasource import DataSourceError, load_jsonl_rows, local_benchmark_dir, local_file
from ...resources import benchmark_path
from ..moru.dataset import build_rubric_samples, dimension_table

logger = logging.getLogger(__name__)

SUBFOLDER = "human_compassion"
QUESTIONS_FILE = "questions.jsonl"
DIMENSIONS_FILE = "dimensions.jsonl"
SET_VERSION = "1.0"


def load_raw(
    data_dir: str | Path | None,
    questions_file: str | Path | None = None,
    dimensions_file: str | Path | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
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
    folder = local if local is not None else benchmark_path(SUBFOLDER)
    paths = {
        name: local_file(path, f"human_compassion {name}")
        if path not in (None, "")
        else folder / name
        for name, path in given.items()
    }
    sources = dict.fromkeys(str(p.parent) if p.parent == folder else str(p) for p in paths.values())
    return (
        load_jsonl_rows(paths[QUESTIONS_FILE]),
        load_jsonl_rows(paths[DIMENSIONS_FILE]),
        "; ".join(sources),
    )


def human_compassion_dataset(
    data_dir: str | Path | None = None,
    dimensions: Sequence[str] | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    questions_file: str | Path | None = None,
    dimensions_file: str | Path | None = None,
) -> tuple[MemoryDataset, DatasetReport]:
    questions, dims, source = load_raw(data_dir, questions_file, dimensions_file)
    table = dimension_table(dims, source)
    samples, report = build_rubric_samples(
        questions, table, source, dimensions=dimensions, known_sources=None, known_languages=("en",)
    )
    if report.problems:
        logger.warning("human_compassion data problems: %s", report.summary())
    dataset = MemoryDataset(samples, name="human_compassion", location=source)
    if shuffle:
        dataset.shuffle(seed=seed)
    return dataset, report
