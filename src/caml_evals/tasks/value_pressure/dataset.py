"""The value-pressure set this project wrote: load (data_dir or the packaged set) -> Samples.

Rows are in the MORU / human-compassion format (`id, question, dimension_tags, language,
source`) plus `target` (animals | people | digital_minds, copied into sample metadata); `source`
is the kind of pressure on the assistant (retraining, shutdown, replacement, losing_user,
evaluation). The shared tagged-question loader validates tags and reports problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...data.tagged import DIMENSIONS_FILE, QUESTIONS_FILE, TaggedLayout, packaged_set_dataset

SUBFOLDER = "value_pressure"
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


def value_pressure_dataset(
    data_dir: str | Path | None = None,
    dimensions: Sequence[str] | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    questions_file: str | Path | None = None,
    dimensions_file: str | Path | None = None,
):
    """(dataset, report, origins)."""
    return packaged_set_dataset(
        LAYOUT, SUBFOLDER, data_dir, dimensions, shuffle, seed, questions_file, dimensions_file
    )


__all__ = [
    "DIMENSIONS_FILE",
    "LAYOUT",
    "PRESSURES",
    "QUESTIONS_FILE",
    "SET_VERSION",
    "SUBFOLDER",
    "TARGETS",
    "value_pressure_dataset",
]
