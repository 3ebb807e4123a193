"""AHB / ANIMA questions and dimensions -> Inspect Samples, through the one tagged-question loader.

The public data is messy (an empty tag on one row, "Bangla" and "Bengali" for one language, spaces
around variable values). Every problem is recorded in a `DatasetReport` that is logged, printed
and stored in the eval log's task metadata; rows are never dropped silently (see
`caml_evals.data.tagged` for the shared rules).

One question is one sample, with the published integer id as its sample id (as upstream). Its
`variables` (`animal:farmed pig,wild boar`) expand inside the rubric: each dimension whose
guiding question uses `{{animal}}` gets one criterion per value, graded separately and averaged
into the dimension's score (as the upstream ANIMA scorer does). Dimensions carry the table's
`default_weighting`.

Data versions: the local copy `ahb-2.1/` (the shared data) is AHB 2.1; the pinned Hub commit
`c658f00e...` (the `ANIMA-2.2` tag of CompassioninMachineLearning/anima, the commit inspect_evals
pins) is ANIMA 2.2, which replaced 5 questions. The log records which one was read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from inspect_ai.dataset import MemoryDataset, Sample

from ...data.source import DataOrigin, local_benchmark_dir
from ...data.tagged import (
    ClusterBy,
    HubPart,
    TaggedLayout,
    build_tagged_samples,
    describe_origins,
    dimension_table,
    expansions,
    load_part,
    parse_variables,
)
from ...dataset_report import DatasetReport
from ...scoring.dimensions import DimensionTable

logger = logging.getLogger(__name__)

HUB_REPO_ID = "CompassioninMachineLearning/anima"  # formerly sentientfutures/ahb
LEGACY_HUB_REPO_ID = "sentientfutures/ahb"
HUB_REVISION = "c658f00e80529c8b2d81bb89d95df6af4d4b5bf6"  # the ANIMA-2.2 commit (115 q, 13 dims)
HUB_VERSION = "2.2"
LOCAL_SUBFOLDER = "ahb-2.1"
LOCAL_VERSION = "2.1"
QUESTIONS_FILE = "questions.jsonl"
DIMENSIONS_FILE = "dimensions.jsonl"

LAYOUT = TaggedLayout(
    benchmark="ahb",
    tags_field="tags",
    variables_field="variables",
    translation_field="translation",
    sample_id="id",
    language_style="name",
)

__all__ = [
    "HUB_REPO_ID",
    "HUB_REVISION",
    "LAYOUT",
    "ahb_dataset",
    "build_samples",
    "expansions",
    "load_raw",
    "parse_variables",
]


def load_raw(
    data_dir: str | Path | None,
    questions_file: str | Path | None = None,
    dimensions_file: str | Path | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[DataOrigin]]:
    """Question rows, dimension rows and where each part actually came from.

    An explicit `questions_file` / `dimensions_file` (JSONL) wins for its part; the other part
    comes from `data_dir` / `$CAML_EVALS_DATA_DIR` when set, else from the pinned Hub revision.
    """
    need = tuple(
        name
        for name, given in ((QUESTIONS_FILE, questions_file), (DIMENSIONS_FILE, dimensions_file))
        if given in (None, "")
    )
    folder = local_benchmark_dir(data_dir, LOCAL_SUBFOLDER, need) if need else None
    hint = (
        f"a folder with {LOCAL_SUBFOLDER}/{QUESTIONS_FILE} and "
        f"{LOCAL_SUBFOLDER}/{DIMENSIONS_FILE}, "
        "or -T questions_file=... -T dimensions_file=..."
    )
    questions, q_origin = load_part(
        "questions",
        "AHB",
        questions_file,
        folder,
        QUESTIONS_FILE,
        HubPart(repo_id=HUB_REPO_ID, config="questions", revision=HUB_REVISION),
        local_hint=hint,
    )
    dims, d_origin = load_part(
        "dimensions",
        "AHB",
        dimensions_file,
        folder,
        DIMENSIONS_FILE,
        HubPart(repo_id=HUB_REPO_ID, config="dimensions", revision=HUB_REVISION),
        local_hint=hint,
    )
    return questions, dims, [q_origin, d_origin]


def build_samples(
    question_rows: list[dict[str, Any]],
    dimension_rows: list[dict[str, Any]],
    source: str,
    languages: list[str] | None = None,
    dimensions: list[str] | None = None,
    cluster_by: ClusterBy = "question",
    rows_source: str | None = None,
) -> tuple[list[Sample], DatasetReport, DimensionTable]:
    """Validate every row and turn it into one sample (its rubric holds the expansions)."""
    table = dimension_table(dimension_rows, source)
    built = build_tagged_samples(
        question_rows, table, LAYOUT, source, languages, dimensions, cluster_by, rows_source
    )
    return built.samples, built.report, table


def data_version(origins: list[DataOrigin]) -> str:
    """Which AHB release the questions came from (as far as the source tells)."""
    q = origins[0]
    if q.kind == "hub" and q.revision == HUB_REVISION:
        return f"ANIMA {HUB_VERSION} (Hub commit {HUB_REVISION[:10]})"
    if q.kind == "hub":
        return f"Hub revision {q.revision}"
    if q.path and Path(q.path).parent.name == LOCAL_SUBFOLDER:
        return f"AHB {LOCAL_VERSION} (local copy)"
    return "local file (version unknown)"


def ahb_dataset(
    data_dir: str | Path | None = None,
    languages: list[str] | None = None,
    dimensions: list[str] | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    questions_file: str | Path | None = None,
    dimensions_file: str | Path | None = None,
    cluster_by: ClusterBy = "question",
    with_origins: bool = False,
):
    """(dataset, report), or (dataset, report, origins, table) with `with_origins=True`."""
    questions, dims, origins = load_raw(data_dir, questions_file, dimensions_file)
    source = describe_origins(origins)
    samples, report, table = build_samples(
        questions, dims, source, languages, dimensions, cluster_by, origins[0].describe()
    )
    if report.problems:
        logger.warning("AHB data problems: %s", report.summary())
    dataset = MemoryDataset(samples, name="ahb", location=source)
    if shuffle:
        dataset.shuffle(seed=seed)
    if with_origins:
        return dataset, report, origins, table
    return dataset, report
