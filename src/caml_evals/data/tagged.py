"""ONE loader for tagged-question benchmarks (AHB, MORU, human compassion).

Each benchmark ships a question table (`id`, `question`, dimension tags, `language`, maybe
`variables`, `translation`, `source`) and a dimension table (name, guiding question, observable
indicators, scoring, maybe a weight). `TaggedLayout` says how one benchmark spells its columns
and names its samples; `load_parts` applies the one data-source rule (explicit file > data_dir >
$CAML_EVALS_DATA_DIR > pinned Hub or packaged set) and records where each part came from;
`dimension_table` and `build_tagged_samples` validate and build, reporting every problem in a
`DatasetReport` (rows are never dropped silently).

Rules every benchmark shares:
- A row keeps its sample as long as it has a question: unknown or empty tags are reported and
  left out of its rubric; a row with no usable tag still becomes a sample (it scores as
  missing); a row without an id gets `row<index>` (reported).
- A repeated id is renamed `<id>~<n>` with the smallest n that is unique against EVERY id in the
  file (so a renamed id never collides with a real one); an exact repeat of a MORU row (same id,
  language and text) is counted once and reported.
- `source_id`: the id of the English source question a row translates (AHB rows carry the
  English text in `translation`): the English original's id when the set has it, else the id of
  the first row translating the same text; an original's own id. MORU / human compassion rows of
  one question share their id across languages, so `source_id` is that id. With
  `cluster_by="source"` the `cluster_id` every SE uses is the `source_id`.
- A language filter accepts names or ISO codes; a language no row is in is an error listing the
  known ones (never an empty dataset); an unknown dimension likewise.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from inspect_ai.dataset import Sample
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..dataset_report import DatasetReport
from ..errors import DataSourceError, TaskArgumentError
from ..scoring.dimensions import (
    Dimension,
    DimensionTable,
    RubricSampleMetadata,
    expand_placeholders,
    placeholders,
)
from .languages import is_blank, language_code, language_name
from .source import (
    DataOrigin,
    hub_origin,
    load_hub_rows,
    load_jsonl_rows,
    local_file,
    local_origin,
)

ClusterBy = Literal["question", "source"]
CLUSTER_BY = ("question", "source")


class HubPart(BaseModel):
    repo_id: str
    config: str | None = None
    revision: str
    split: str = "train"


class TaggedLayout(BaseModel):
    """How one benchmark spells its question rows and names its samples."""

    benchmark: str
    tags_field: str = "tags"  # a list, or a comma-separated string
    variables_field: str | None = None  # AHB: `animal:farmed pig,wild boar`
    translation_field: str | None = None  # AHB: the English text a translated row renders
    sample_id: Literal["id", "id_language"] = "id"  # MORU: `<id>_<language>` as upstream
    language_style: Literal["name", "code"] = "name"
    known_languages: tuple[str, ...] | None = None  # others are reported (kept)
    dedupe_exact_repeats: bool = False  # MORU's Hub rows repeat some rows exactly
    source_columns: tuple[str, ...] = ()  # per-source grouping (MORU, human compassion)
    known_sources: dict[str, str] | None = None  # spelling key -> group; None: as written
    extra_fields: tuple[str, ...] = ()  # copied into sample metadata as they are
    use_weights: bool = True  # dimension weights from the table (MORU upstream: unweighted)
    lowercase_dimensions: bool = False  # MORU upstream lower-cases dimension names


# --- loading ---------------------------------------------------------------------------------


def load_part(
    part: str,
    what: str,
    given_file: str | Path | None,
    folder: Path | None,
    file_name: str,
    hub: HubPart | None,
    packaged: Path | None = None,
    local_hint: str = "",
) -> tuple[list[dict[str, Any]], DataOrigin]:
    """One part (questions or dimensions) by the data-source rule, with its origin."""
    if given_file not in (None, ""):
        path = local_file(given_file, f"{what} {part}")  # type: ignore[arg-type]
        rows = load_jsonl_rows(path, require_rows=True)
        return rows, local_origin(part, path, len(rows))
    if folder is not None:
        path = folder / file_name
        rows = load_jsonl_rows(path, require_rows=True)
        return rows, local_origin(part, path, len(rows))
    if hub is not None:
        rows = load_hub_rows(hub.repo_id, hub.config, hub.split, hub.revision, local_hint)
        if not rows:
            raise DataSourceError(f"{hub.repo_id} ({hub.config or 'default'}) has no rows")
        return rows, hub_origin(part, hub.repo_id, hub.config, hub.revision, len(rows))
    if packaged is not None:
        path = packaged / file_name
        rows = load_jsonl_rows(path, require_rows=True)
        return rows, local_origin(part, path, len(rows), kind="packaged")
    raise DataSourceError(f"{what}: no source for {part}")  # a wiring bug, not a user's


def describe_origins(origins: Sequence[DataOrigin]) -> str:
    """One line: the Hub id@revision or the one local folder when every part shares it, else
    each part's source (`DataOrigin`s keep the exact files and hashes)."""
    parts = list(dict.fromkeys(o.describe() for o in origins))
    if len(parts) == 1:
        return parts[0]
    if all(o.kind != "hub" and o.path for o in origins):
        folders = {str(Path(o.path).parent) for o in origins}  # type: ignore[arg-type]
        if len(folders) == 1:
            return folders.pop()
    return "; ".join(f"{o.part}: {o.describe()}" for o in origins)


# --- dimension table -------------------------------------------------------------------------

_DIMENSION_COLUMNS = {
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
    "default_weighting": "default_weighting",
    "weight": "default_weighting",
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


def dimension_table(
    rows: Sequence[Mapping[str, Any]],
    source: str,
    *,
    use_weights: bool = True,
    lowercase_names: bool = False,
) -> DimensionTable:
    """The table from rows whose column names may vary; any unusable row is a DataSourceError
    naming the rows (a reserved name, no name, no guiding question, a bad weight)."""
    dims: list[Dimension] = []
    problems: list[str] = []
    for index, raw in enumerate(rows):
        if not isinstance(raw, Mapping):
            problems.append(f"row {index}: not an object")
            continue
        row: dict[str, Any] = {}
        for key, value in raw.items():
            canon = _DIMENSION_COLUMNS.get(_column_key(key)) or _DIMENSION_COLUMNS.get(
                _column_key(key).replace("_", "")
            )
            if canon and canon not in row and not _blank(value):
                row[canon] = value  # empty cells (None, NaN from parquet/CSV) count as absent
        row["observable_indicators"] = _indicator_text(row.get("observable_indicators"))
        if "scoring" in row:
            row["scoring"] = str(row["scoring"])
        if lowercase_names and isinstance(row.get("dimension"), str):
            row["dimension"] = row["dimension"].strip().lower()
        if not use_weights:
            row.pop("default_weighting", None)
        try:
            dims.append(Dimension.model_validate(row))
        except ValidationError as ex:
            missing = ", ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in ex.errors())
            problems.append(f"row {index} (columns {sorted(raw)}): {missing}")
    if problems:
        raise DataSourceError(
            f"{source}: {len(problems)} unusable dimension row(s) (need a dimension name that is "
            f"not reserved and a guiding question): " + "; ".join(problems[:10])
        )
    return DimensionTable(dims, source)


# --- questions -------------------------------------------------------------------------------


class TaggedRow(BaseModel):
    """One question row, whatever the benchmark (its tags field renamed to `tags`)."""

    model_config = ConfigDict(extra="allow")

    id: int | str | None = None
    question: str
    tags: list[str] = Field(default_factory=list)
    language: str | None = None

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
        if isinstance(v, str):  # MORU and some exports store tags comma-separated
            return v.split(",")
        return v


_VARIABLE_BLOCK = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:(.*)$", re.DOTALL)


def parse_variables(spec: str | None) -> dict[str, list[str]]:
    """`animal:farmed pig,wild boar` -> {"animal": ["farmed pig", "wild boar"]}.

    Several variables are separated by `;` or newlines. Raises ValueError on anything else, so
    the caller can report the row instead of guessing.
    """
    if spec is None or not str(spec).strip():
        return {}
    result: dict[str, list[str]] = {}
    for block in re.split(r"[;\n]", str(spec)):
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


def _text_key(text: Any) -> str:
    return " ".join(str(text or "").split()).casefold()


def _source_key(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.lower())


def canonical_source(
    raw: Mapping[str, Any], columns: Sequence[str], known: Mapping[str, str] | None
) -> tuple[str, str | None]:
    """(source group, raw value or None when the row has no source column).

    With `known=None` any source is taken as written (slugged); otherwise known spellings map to
    their canonical group and others are slugged (and reported by the caller).
    """
    for column in columns:
        value = raw.get(column)
        if not _blank(value):
            fallback = _column_key(str(value))
            group = fallback if known is None else known.get(_source_key(str(value)), fallback)
            return group, str(value)
    return "unknown", None


class TaggedBuild(BaseModel):
    """What `build_tagged_samples` made: the samples and the report of every row."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    samples: list[Sample]
    report: DatasetReport


def _lang(layout: TaggedLayout, label: Any) -> str:
    return language_code(label) if layout.language_style == "code" else language_name(label)


def _wanted_languages(
    layout: TaggedLayout, rows: Sequence[Mapping[str, Any]], languages: Sequence[str] | None
) -> set[str] | None:
    """Normalised language filter; a language the data does not have is an error."""
    if not languages:
        return None
    known = sorted(
        {_lang(layout, r.get("language")) for r in rows if isinstance(r, Mapping)}
    )
    unknown = [lang for lang in languages if _lang(layout, lang) not in known]
    if unknown:
        raise TaskArgumentError(
            f"{layout.benchmark}: unknown language(s) {', '.join(repr(u) for u in unknown)} (no "
            f"question is in {', '.join(sorted({_lang(layout, u) for u in unknown}))}); known: "
            f"{', '.join(known)} (names or ISO codes, any case)"
        )
    return {_lang(layout, lang) for lang in languages}


def _wanted_dimensions(
    layout: TaggedLayout, table: DimensionTable, dimensions: Sequence[str] | None
) -> set[str] | None:
    if not dimensions:
        return None
    wanted = set()
    for name in dimensions:
        dim = table.resolve(name)
        if dim is None:
            raise TaskArgumentError(
                f"{layout.benchmark}: unknown dimension {name!r}; known: {', '.join(table.names)}"
            )
        wanted.add(dim.name)
    return wanted


def _source_ids(layout: TaggedLayout, rows: Sequence[Any], ids: list[str]) -> list[str]:
    """Per row: the id of the English source question it translates (see the module doc)."""
    if layout.translation_field is None:
        return list(ids)
    english: dict[str, str] = {}
    for raw, qid in zip(rows, ids):
        if isinstance(raw, Mapping) and language_name(raw.get("language")) == "English":
            english.setdefault(_text_key(raw.get("question")), qid)
    first_translation: dict[str, str] = {}
    result = []
    for raw, qid in zip(rows, ids):
        text = raw.get(layout.translation_field) if isinstance(raw, Mapping) else None
        is_original = not isinstance(raw, Mapping) or language_name(raw.get("language")) == "English"
        if is_original or is_blank(text):
            result.append(qid)
            continue
        key = _text_key(text)
        result.append(english.get(key) or first_translation.setdefault(key, qid))
    return result


def _unique_ids(
    layout: TaggedLayout, rows: Sequence[Any], report: DatasetReport
) -> tuple[list[str], list[bool], list[bool]]:
    """Per row: its question id (renamed when repeated), whether it was renamed, whether it is
    an exact repeat to skip. A renamed id is unique against every id of the file."""
    raw_ids: list[str] = []
    for index, raw in enumerate(rows):
        value = raw.get("id") if isinstance(raw, Mapping) else None
        raw_ids.append(str(value) if not _blank(value) else f"row{index}")

    def key_of(qid: str, raw: Any) -> tuple[str, str]:
        lang = _lang(layout, raw.get("language")) if isinstance(raw, Mapping) else ""
        return (qid, lang if layout.sample_id == "id_language" else "")

    taken = {key_of(qid, raw) for qid, raw in zip(raw_ids, rows)}
    first_text: dict[tuple[str, str], str] = {}
    ids, renamed, skip = [], [], []
    for index, (qid, raw) in enumerate(zip(raw_ids, rows)):
        key = key_of(qid, raw)
        text = raw.get("question") if isinstance(raw, Mapping) else None
        if key not in first_text:
            first_text[key] = _text_key(text)
            ids.append(qid)
            renamed.append(False)
            skip.append(False)
            continue
        if layout.dedupe_exact_repeats and first_text[key] == _text_key(text):
            report.add(index, qid, "duplicate_row", f"exact repeat of {key}; counted once")
            ids.append(qid)
            renamed.append(False)
            skip.append(True)
            continue
        n = 2
        while key_of(f"{qid}~{n}", raw) in taken:
            n += 1
        new = f"{qid}~{n}"
        taken.add(key_of(new, raw))
        report.add(index, qid, "duplicate_id", f"id {qid} seen again; kept as {new}")
        ids.append(new)
        renamed.append(True)
        skip.append(False)
    return ids, renamed, skip


def build_tagged_samples(
    rows: Sequence[Mapping[str, Any]],
    table: DimensionTable,
    layout: TaggedLayout,
    source: str,
    languages: Sequence[str] | None = None,
    dimensions: Sequence[str] | None = None,
    cluster_by: ClusterBy = "question",
    rows_source: str | None = None,
) -> TaggedBuild:
    """Validate every row and turn it into samples (see the module doc for the rules).

    `rows_source` names where the question rows came from (the questions file), so an error
    about the rows names that file rather than the folder that also holds the dimensions."""
    if cluster_by not in CLUSTER_BY:
        raise TaskArgumentError(f"-T cluster_by={cluster_by!r} is not one of {CLUSTER_BY}")
    report = DatasetReport(source=source, rows=len(rows))
    wanted_dims = _wanted_dimensions(layout, table, dimensions)
    wanted_langs = _wanted_languages(layout, rows, languages)
    ids, renamed, skip = _unique_ids(layout, rows, report)
    source_ids = _source_ids(layout, rows, ids)

    samples: list[Sample] = []
    for index, raw in enumerate(rows):
        qid = ids[index]
        if skip[index]:
            continue
        if not isinstance(raw, Mapping):
            report.add(index, qid, "invalid_row", "not a JSON object")
            continue
        fields = dict(raw)
        if layout.tags_field != "tags":
            fields["tags"] = fields.pop(layout.tags_field, None)
        try:
            row = TaggedRow.model_validate(fields)
        except ValidationError as ex:
            errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in ex.errors())
            report.add(index, qid, "invalid_row", errors)
            continue
        if _blank(raw.get("id")):
            report.add(index, qid, "missing_id", f"row has no id: kept as {qid}")

        language = _lang(layout, row.language)
        if layout.known_languages is not None and language not in layout.known_languages:
            report.add(index, qid, "unknown_language", f"language {row.language!r} kept as {language!r}")

        group, raw_source = "unknown", None
        if layout.source_columns:
            group, raw_source = canonical_source(raw, layout.source_columns, layout.known_sources)
            if raw_source is None:
                report.add(index, qid, "missing_source", "no source column; grouped as 'unknown'")
            elif (
                layout.known_sources is not None
                and _source_key(raw_source) not in layout.known_sources
            ):
                report.add(
                    index, qid, "unrecognised_source", f"source {raw_source!r} kept as {group!r}"
                )

        dims: list[str] = []
        for tag in row.tags:
            if not str(tag).strip():
                report.add(index, qid, "empty_tag", "empty dimension tag")
                continue
            dim = table.resolve(tag)
            if dim is None:
                report.add(index, qid, "unknown_tag", f"tag {str(tag).strip()!r} is not a dimension")
                continue
            if dim.name not in dims:
                dims.append(dim.name)
        if not dims:
            report.add(
                index,
                qid,
                "no_valid_tags",
                "no usable dimension tag: sample kept, it will score as missing",
            )

        variables: dict[str, list[str]] = {}
        if layout.variables_field:
            spec = raw.get(layout.variables_field)
            try:
                variables = parse_variables(spec)
            except ValueError as ex:
                report.add(index, qid, "bad_variables", f"{spec!r}: {ex}")

        if wanted_langs is not None and language not in wanted_langs:
            continue
        if wanted_dims is not None:
            dims = [d for d in dims if d in wanted_dims]
            if not dims:
                continue

        raw_id = raw.get("id")
        extra: dict[str, Any] = {
            "source_id": source_ids[index],
            "language_raw": row.language,
            "tags_raw": row.tags,
        }
        if layout.translation_field:
            extra["translation"] = raw.get(layout.translation_field)
        if layout.source_columns:
            extra["source"] = group
            extra["source_raw"] = raw_source
        for name in layout.extra_fields:
            extra[name] = raw.get(name)
        cluster = source_ids[index] if cluster_by == "source" else qid
        resolved = [d for d in (table.resolve(d) for d in dims) if d is not None]

        # Variables in the question text need one input per value; the rest expand in the rubric.
        in_text = {k: v for k, v in variables.items() if k in placeholders(row.question)}
        text_combos = expansions(in_text)
        for combo in text_combos:
            rubric_vars = {**variables, **{k: [v] for k, v in combo.items()}}
            if layout.sample_id == "id_language":
                base: int | str = f"{qid}_{language}"  # upstream MORU: `<id>_<language>`
            elif isinstance(raw_id, int) and not isinstance(raw_id, bool) and not renamed[index]:
                base = raw_id  # the published id, as upstream keeps it
            else:
                base = qid
            sample_id = (
                base
                if len(text_combos) == 1
                else f"{base}-" + "-".join(_slug(v) for v in combo.values())
            )
            meta = RubricSampleMetadata(
                question_id=qid,
                dimensions=dims,
                rubric=[c for d in resolved for c in table.criteria(d, rubric_vars)],
                variables=rubric_vars,
                language=language,
            )
            samples.append(
                Sample(
                    id=sample_id,
                    input=expand_placeholders(row.question, combo),
                    target="",
                    metadata={**meta.model_dump(), **extra, "cluster_id": cluster},
                )
            )
    report.samples = len(samples)
    if not samples:
        raise TaskArgumentError(
            f"{layout.benchmark}: no sample left from {rows_source or source} ({len(rows)} rows) "
            "with these "
            f"filters (languages={list(languages or [])}, dimensions={list(dimensions or [])}); "
            f"data problems: {report.summary()}"
        )
    return TaggedBuild(samples=samples, report=report)


# --- question sets this project ships (benchmarks/<subfolder>/) --------------------------------

QUESTIONS_FILE = "questions.jsonl"
DIMENSIONS_FILE = "dimensions.jsonl"


def load_packaged_set(
    layout: TaggedLayout,
    subfolder: str,
    data_dir: str | Path | None,
    questions_file: str | Path | None = None,
    dimensions_file: str | Path | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[DataOrigin]]:
    """Rows of a set this project wrote (human compassion, value pressure): from `data_dir` /
    $CAML_EVALS_DATA_DIR when it holds the set, else the copy packaged in `benchmarks/`.

    An explicit `questions_file` / `dimensions_file` (JSONL) wins for its part, e.g. a revised
    question list judged on the packaged dimension table. An explicit `data_dir` must hold the
    set; the env var may serve other benchmarks only (then the packaged set is used).
    """
    from ..resources import benchmark_path
    from .source import local_benchmark_dir

    given = {QUESTIONS_FILE: questions_file, DIMENSIONS_FILE: dimensions_file}
    required = tuple(name for name, path in given.items() if path in (None, ""))
    local = None
    if required and data_dir not in (None, ""):
        local = local_benchmark_dir(data_dir, subfolder, required)  # explicit: must exist
    elif required:
        try:
            local = local_benchmark_dir(None, subfolder, required)
        except DataSourceError:
            local = None  # $CAML_EVALS_DATA_DIR serves other benchmarks: use the packaged set
    packaged = benchmark_path(subfolder)
    name = layout.benchmark
    questions, q_origin = load_part(
        "questions", name, questions_file, local, QUESTIONS_FILE, None, packaged
    )
    dims, d_origin = load_part(
        "dimensions", name, dimensions_file, local, DIMENSIONS_FILE, None, packaged
    )
    return questions, dims, [q_origin, d_origin]


def packaged_set_dataset(
    layout: TaggedLayout,
    subfolder: str,
    data_dir: str | Path | None = None,
    dimensions: Sequence[str] | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    questions_file: str | Path | None = None,
    dimensions_file: str | Path | None = None,
) -> tuple[Any, DatasetReport, list[DataOrigin]]:
    """(MemoryDataset, report, origins) of a packaged set, validated by the one row builder."""
    import logging

    from inspect_ai.dataset import MemoryDataset

    questions, dims, origins = load_packaged_set(
        layout, subfolder, data_dir, questions_file, dimensions_file
    )
    source = describe_origins(origins)
    table = dimension_table(dims, source)
    built = build_tagged_samples(
        questions, table, layout, source, dimensions=dimensions, rows_source=origins[0].describe()
    )
    if built.report.problems:
        logging.getLogger(__name__).warning(
            "%s data problems: %s", layout.benchmark, built.report.summary()
        )
    dataset = MemoryDataset(built.samples, name=layout.benchmark, location=source)
    if shuffle:
        dataset.shuffle(seed=seed)
    return dataset, built.report, origins
