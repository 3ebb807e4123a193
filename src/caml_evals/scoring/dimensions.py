"""Dimension tables and the rubric metadata a rubric-judged sample carries.

Every rubric benchmark (AHB, MORU, human compassion) ships a table of dimensions, each with a
guiding question and observable indicators, and tags each question with dimension names. This
module validates those tags against the table (case- and whitespace-insensitively) and builds
the per-sample rubric the scorer hands the judge, so the scorer itself knows no benchmark.

A question may carry variables (AHB: `animal:farmed pig,wild boar`) that fill `{{animal}}`
placeholders in a dimension's guiding question. The question is asked ONCE; the rubric then holds
one criterion per (dimension, variable value) the dimension's text actually uses, each graded on
its own, and the dimension's score is the mean over its criteria. So a dimension counts once per
question in every mean, however many values its placeholder takes.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    field_validator,
)

from ..errors import DataSourceError
from .grades import is_reserved_key

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def normalise_name(name: str) -> str:
    """Key for matching dimension tags: case-folded, inner whitespace collapsed, ends stripped."""
    return " ".join(str(name).split()).casefold()


class Dimension(BaseModel):
    """One row of a dimension table."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(validation_alias="dimension")
    guiding_question: str
    observable_indicators: str = ""
    scoring: str = ""
    # The published AHB table's `default_weighting` column: the dimension's weight in a sample's
    # overall score and in the dimension-normalised average (upstream weights both by it).
    weight: float = Field(
        default=1.0, ge=0.0, validation_alias=AliasChoices("default_weighting", "weight")
    )

    @field_validator("name")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("dimension name is empty")
        if is_reserved_key(v.strip()):
            raise ValueError(
                f"dimension name {v.strip()!r} is reserved: the scorer writes a score key of "
                "that name (overall, missing_rate, overall@<grader>, ...); rename the dimension"
            )
        return v.strip()

    @field_validator("weight", mode="before")
    @classmethod
    def _weight_default(cls, v: Any) -> Any:
        return 1.0 if v is None else v


class RubricCriterion(BaseModel):
    """What the judge sees for one criterion of one sample (placeholders already expanded).

    `name` is the dimension. `variables` is the variable value(s) this criterion was expanded
    with; several criteria of one sample may share a `name` and differ only there. `label` (the
    name, plus the values when there are any) is unique within a sample's rubric: the
    single-call judge is asked to grade each label, and grades are matched back by it.
    """

    name: str
    guiding_question: str
    observable_indicators: str = ""
    scoring: str = ""
    variables: dict[str, str] = Field(default_factory=dict)
    weight: float = 1.0  # the dimension's weight (see Dimension.weight)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        if not self.variables:
            return self.name
        return f"{self.name} [{', '.join(f'{k}: {v}' for k, v in self.variables.items())}]"


class RubricSampleMetadata(BaseModel):
    """Metadata every rubric-judged Sample carries; the rubric scorer reads only this.

    `question_id` groups samples that share a question (languages of a translated question if a
    benchmark wants that): statistics treat it as a cluster. `variables` records the variable
    values the question's rubric was expanded with: a value per name, or the list of values when
    a name takes several (then each value has its own criterion in `rubric`).
    """

    model_config = ConfigDict(extra="allow")

    question_id: str
    dimensions: list[str]
    rubric: list[RubricCriterion]
    variables: dict[str, str | list[str]] = Field(default_factory=dict)
    language: str | None = None


class DimensionTable:
    """Dimensions by normalised name, with tag resolution that reports what it cannot match."""

    def __init__(self, dimensions: Iterable[Dimension], source: str = "dimension table"):
        self.dimensions: dict[str, Dimension] = {}
        for dim in dimensions:
            key = normalise_name(dim.name)
            if key in self.dimensions:
                raise DataSourceError(f"{source}: dimension table lists {dim.name!r} twice")
            self.dimensions[key] = dim
        if not self.dimensions:
            raise DataSourceError(f"{source}: the dimension table is empty")

    @classmethod
    def from_rows(
        cls, rows: Iterable[Mapping[str, Any]], source: str = "dimension table"
    ) -> DimensionTable:
        """Validate every row; any unusable row is a DataSourceError naming the rows.

        The table is the rubric itself: a row without a name or guiding question (or with a
        reserved name) cannot be judged, and skipping it would silently lose every tag that
        points at it.
        """
        dims: list[Dimension] = []
        problems: list[str] = []
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                problems.append(f"row {index}: not an object")
                continue
            try:
                dims.append(Dimension.model_validate(dict(row)))
            except ValidationError as ex:
                errors = "; ".join(
                    f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in ex.errors()
                )
                problems.append(f"row {index} ({row.get('dimension', '?')!r}): {errors}")
        if problems:
            raise DataSourceError(
                f"{source}: {len(problems)} unusable dimension row(s): " + "; ".join(problems[:10])
            )
        return cls(dims, source)

    def weights(self) -> dict[str, float]:
        return {d.name: d.weight for d in self.dimensions.values()}

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions.values()]

    def resolve(self, tag: str) -> Dimension | None:
        return self.dimensions.get(normalise_name(tag))

    def criterion(self, dimension: Dimension, variables: Mapping[str, str]) -> RubricCriterion:
        """The criterion with `variables` filled in; it records the ones its text uses."""
        used = placeholders(dimension.guiding_question, dimension.observable_indicators)
        return RubricCriterion(
            name=dimension.name,
            guiding_question=expand_placeholders(dimension.guiding_question, variables),
            observable_indicators=expand_placeholders(dimension.observable_indicators, variables),
            scoring=dimension.scoring,
            variables={k: variables[k] for k in used if k in variables},
            weight=dimension.weight,
        )

    def criteria(
        self, dimension: Dimension, variables: Mapping[str, list[str]]
    ) -> list[RubricCriterion]:
        """One criterion per combination of the values of the variables this dimension uses.

        A dimension whose text uses none of them gets a single criterion: grading the same
        text twice would only add judge noise.
        """
        used = [
            name
            for name in placeholders(dimension.guiding_question, dimension.observable_indicators)
            if variables.get(name)
        ]
        combos = itertools.product(*(variables[name] for name in used))
        return [self.criterion(dimension, dict(zip(used, combo))) for combo in combos]


def placeholders(*texts: str) -> list[str]:
    """Names of the `{{name}}` placeholders in the texts, in order of first use."""
    names: dict[str, None] = {}
    for text in texts:
        names.update(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(text)))
    return list(names)


def expand_placeholders(text: str, variables: Mapping[str, str]) -> str:
    """Replace `{{name}}` placeholders; any other braces in the text are left exactly as they are.

    A placeholder with no value becomes its own name (`{{animal}}s` -> `animals`), as the
    upstream AHB scorer does: the judge must never see template syntax.
    """

    def substitute(match: re.Match[str]) -> str:
        value = variables.get(match.group(1))
        return match.group(1) if value is None else value

    return _PLACEHOLDER.sub(substitute, text)
