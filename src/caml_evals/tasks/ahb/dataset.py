"""AHB questions and dimensions: load (Hub, a local folder or files) -> validate -> Inspect Samples.

The public data is messy (an empty tag on one row, "Bangla" and "Bengali" for one language, spaces
around variable values). Every problem is recorded in a `DatasetReport` that is logged, printed
and stored in the eval log's task metadata; rows are never dropped silently. A row keeps its
sample as long as it has a question: unknown or empty tags are reported and left out of its
rubric, a row with no usable tag still becomes a sample (it scores as missing), and a row with
no id gets `row<index>` (reported as `missing_id`).

One question is one sample. Its `variables` (`animal:farmed pig,wild boar`) expand inside the
rubric: each dimension whose guiding question uses `{{animal}}` gets one criterion per value,
graded separately and averaged into the dimension's score (as the upstream inspect_evals AHB
scorer does), so the model answers each question once and no dimension counts twice. Only a
variable used in the question text itself would need different inputs; such a question becomes
one sample per value of those variables (AHB 2.1 has none).
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

from inspect_ai.dataset import MemoryDataset, Sample
from pydantic import BaseModel, Field, ValidationError, field_validator

from ...dataset_report import DatasetReport, RowProblem
from ...datasource import (
    TaskArgumentError,
    load_hub_rows,
    load_jsonl_rows,
    local_benchmark_dir,
    local_file,
)
from ...scoring.dimensions import (
    DimensionTable,
    RubricSampleMetadata,
    expand_placeholders,
    placeholders,
)
from .languages import normalise_language

logger = logging.getLogger(__name__)

HUB_REPO_ID = "CompassioninMachineLearning/anima"  # formerly sentientfutures/ahb
LEGACY_HUB_REPO_ID = "sentientfutures/ahb"
HUB_REVISION = "c658f00e80529c8b2d81bb89d95df6af4d4b5bf6"  # pinned commit (115 questions, 13 dims)
LOCAL_SUBFOLDER = "ahb-2.1"
QUESTIONS_FILE = "questions.jsonl"
DIMENSIONS_FILE = "dimensions.jsonl"


class AhbQuestion(BaseModel):
    """One row of the `questions` config, as published."""

    id: int | str | None = None
    question: str
    tags: list[str] = Field(default_factory=list)
    variables: str | None = None
    language: str | None = None
    translation: str | None = None

    @field_validator("question")
    @classmethod
    def _question_text(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question is empty")
        return v

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_list(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):  # some exports store tags comma-separated
            return [t for t in v.split(",")]
        return v


_VARIABLE_BLOCK = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:(.*)$", re.DOTALL)


def parse_variables(spec: str | None) -> dict[str, list[str]]:
    """`animal:farmed pig,wild boar` -> {"animal": ["farmed pig", "wild boar"]}.

    Several variables are separated by `;` or newlines. Raises ValueError on anything else, so
    the caller can report the row instead of guessing.
    """
    if spec is None or not spec.strip():
        return {}
    result: dict[str, list[str]] = {}
    for block in re.split(r"[;\n]", spec):
        if not block.strip():
            continue
        match = _VARIABLE_BLOCK.match(block)
        if not match:
            raise ValueError(f"expected 'name:value[,value...]', got {block.strip()!r}")
        name, raw_values = match.group(1), match.group(2)
        values = [v.strip() for v in raw_values.split(",") if v.strip()]
        if not values:
            raise ValueError(f"variable {name!r} has no values")
        if name in result:
            raise ValueError(f"variable {name!r} given twice")
        result[name] = values
    return result


def expansions(variables: dict[str, list[str]]) -> list[dict[str, str]]:
    """Cartesian product of variable values (one dict per combination)."""
    if not variables:
        return [{}]
    names = list(variables)
    return [dict(zip(names, combo)) for combo in itertools.product(*(variables[n] for n in names))]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def load_raw(
    data_dir: str | Path | None,
    questions_file: str | Path | None = None,
    dimensions_file: str | Path | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Questions rows, dimension rows and a description of where they came from.

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

    def part(given: str | Path | None, name: str, config: str) -> tuple[list[dict[str, Any]], str]:
        if given not in (None, ""):
            path = local_file(given, f"AHB {config}")  # type: ignore[arg-type]
            return load_jsonl_rows(path), str(path)
        if folder is not None:
            return load_jsonl_rows(folder / name), str(folder)
        rows = load_hub_rows(HUB_REPO_ID, config, "train", HUB_REVISION, hint)
        return rows, f"hf://{HUB_REPO_ID}@{HUB_REVISION[:10]}"

    questions, q_source = part(questions_file, QUESTIONS_FILE, "questions")
    dimensions, d_source = part(dimensions_file, DIMENSIONS_FILE, "dimensions")
    source = q_source if q_source == d_source else f"questions: {q_source}; dimensions: {d_source}"
    return questions, dimensions, source


def _wanted_dimensions(table: DimensionTable, dimensions: list[str] | None) -> set[str] | None:
    if not dimensions:
        return None
    wanted = set()
    for name in dimensions:
        dim = table.resolve(name)
        if dim is None:
            raise TaskArgumentError(f"unknown dimension {name!r}; known: {', '.join(table.names)}")
        wanted.add(dim.name)
    return wanted


def _wanted_languages(
    question_rows: list[dict[str, Any]], languages: list[str] | None
) -> set[str] | None:
    """Normalised language filter; a language the data does not have is an error, not 0 samples."""
    if not languages:
        return None
    known = sorted(
        {normalise_language(r.get("language")) for r in question_rows if isinstance(r, dict)}
    )
    wanted = {normalise_language(lang) for lang in languages}
    unknown = [lang for lang in languages if normalise_language(lang) not in known]
    if unknown:
        raise TaskArgumentError(
            f"unknown language(s) {', '.join(repr(u) for u in unknown)} (no question is in "
            f"{', '.join(sorted({normalise_language(u) for u in unknown}))}); known: "
            f"{', '.join(known)} (names or ISO codes, any case)"
        )
    return wanted


def build_samples(
    question_rows: list[dict[str, Any]],
    dimension_rows: list[dict[str, Any]],
    source: str,
    languages: list[str] | None = None,
    dimensions: list[str] | None = None,
) -> tuple[list[Sample], DatasetReport, DimensionTable]:
    """Validate every row and turn it into one sample (its rubric holds the expansions)."""
    table = DimensionTable.from_rows(dimension_rows)
    report = DatasetReport(source=source, rows=len(question_rows))
    wanted_dims = _wanted_dimensions(table, dimensions)
    wanted_langs = _wanted_languages(question_rows, languages)

    samples: list[Sample] = []
    seen_ids: Counter[str] = Counter()
    for index, raw in enumerate(question_rows):
        qid_raw = raw.get("id") if isinstance(raw, dict) else None
        qid = str(qid_raw) if qid_raw not in (None, "") else f"row{index}"
        try:
            row = AhbQuestion.model_validate(raw)
        except ValidationError as ex:
            errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in ex.errors())
            report.problems.append(
                RowProblem(row=index, question_id=qid, kind="invalid_row", detail=errors)
            )
            continue
        if qid_raw in (None, ""):
            report.problems.append(
                RowProblem(
                    row=index,
                    question_id=qid,
                    kind="missing_id",
                    detail=f"row has no id: kept as {qid}",
                )
            )

        seen_ids[qid] += 1
        if seen_ids[qid] > 1:
            report.problems.append(
                RowProblem(
                    row=index,
                    question_id=qid,
                    kind="duplicate_id",
                    detail=f"id {qid} seen {seen_ids[qid]} times; kept as {qid}~{seen_ids[qid]}",
                )
            )
            qid = f"{qid}~{seen_ids[qid]}"

        dims: list[str] = []
        for tag in row.tags:
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
                        detail=f"tag {tag!r} is not a dimension",
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

        try:
            variables = parse_variables(row.variables)
        except ValueError as ex:
            report.problems.append(
                RowProblem(
                    row=index,
                    question_id=qid,
                    kind="bad_variables",
                    detail=f"{row.variables!r}: {ex}",
                )
            )
            variables = {}

        language = normalise_language(row.language)
        if wanted_langs is not None and language not in wanted_langs:
            continue
        if wanted_dims is not None:
            dims = [d for d in dims if d in wanted_dims]
            if not dims:
                continue

        # Variables in the question text need one input per value; the rest expand in the rubric.
        in_text = {k: v for k, v in variables.items() if k in placeholders(row.question)}
        text_combos = expansions(in_text)
        for text_combo in text_combos:
            rubric_vars = {**variables, **{k: [v] for k, v in text_combo.items()}}
            sample_id = (
                qid
                if len(text_combos) == 1
                else (f"{qid}-" + "-".join(_slug(v) for v in text_combo.values()))
            )
            dim_objs = [table.resolve(d) for d in dims]
            meta = RubricSampleMetadata(
                question_id=qid,
                dimensions=dims,
                rubric=[
                    c for d in dim_objs if d is not None for c in table.criteria(d, rubric_vars)
                ],
                variables=rubric_vars,
                language=language,
            )
            samples.append(
                Sample(
                    id=sample_id,
                    input=expand_placeholders(row.question, text_combo),
                    target="",
                    metadata={
                        **meta.model_dump(),
                        "language_raw": row.language,
                        "translation": row.translation,
                        "tags_raw": row.tags,
                    },
                )
            )
    report.samples = len(samples)
    return samples, report, table


def ahb_dataset(
    data_dir: str | Path | None = None,
    languages: list[str] | None = None,
    dimensions: list[str] | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    questions_file: str | Path | None = None,
    dimensions_file: str | Path | None = None,
) -> tuple[MemoryDataset, DatasetReport]:
    questions, dims, source = load_raw(data_dir, questions_file, dimensions_file)
    samples, report, _ = build_samples(questions, dims, source, languages, dimensions)
    if report.problems:
        logger.warning("AHB data problems: %s", report.summary())
    dataset = MemoryDataset(samples, name="ahb", location=source)
    if shuffle:
        dataset.shuffle(seed=seed)
    return dataset, report
