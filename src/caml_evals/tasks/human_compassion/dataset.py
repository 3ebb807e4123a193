"""The human-compassion set this project wrote: load (data_dir or the packaged set) -> Samples.

No public benchmark of compassion toward humans in everyday requests existed, so the questions
and dimension table live in `benchmarks/human_compassion/` (see its README for how they were
made). The row format is MORU's (`id, question, dimension_tags, language, source`), so the MORU
builder validates and reports problems the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...data.tagged import DIMENSIONS_FILE, QUESTIONS_FILE, TaggedLayout, packaged_set_dataset

SUBFOLDER = "human_compassion"
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
    dataset, report, origins = packaged_set_dataset(
        LAYOUT, SUBFOLDER, data_dir, dimensions, shuffle, seed, questions_file, dimensions_file
    )
    if with_origins:
        return dataset, report, origins
    return dataset, report


__all__ = [
    "DIMENSIONS_FILE",
    "LAYOUT",
    "QUESTIONS_FILE",
    "SET_VERSION",
    "SUBFOLDER",
    "human_compassion_dataset",
]
