"""Dimension tables and the rubric metadata a rubric-judged sample carries.

Every rubric benchmark (AHB, MORU, human compassion) ships a table of dimensions, each with a
guiding question and observable indicators, and tags each question with dimension names. This
module validates those tags against the table (case- and whitespace-insensitively) and builds
the per-sample rubric the scorer hands the judge, so the scorer itself knows no benchmark.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

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

    @field_validator("name")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("dimension name is empty")
        return v.strip()


class RubricCriterion(BaseModel):
    """What the judge sees for one dimension of one sample (placeholders already expanded)."""

    name: str
    guiding_question: str
    observable_indicators: str = ""
    scoring: str = ""


class RubricSampleMetadata(BaseModel):
    """Metadata every rubric-judged Sample carries; the rubric scorer reads only this.

    `question_id` groups samples that share a question (variable expansions, languages of a
    translated question if a benchmark wants that): statistics treat it as a cluster.
    """

    model_config = ConfigDict(extra="allow")

    question_id: str
    dimensions: list[str]
    rubric: list[RubricCriterion]
    variables: dict[str, str] = Field(default_factory=dict)
    language: str | None = None


class DimensionTable:
    """Dimensions by normalised name, with tag resolution that reports what it cannot match."""

    def __init__(self, dimensions: Iterable[Dimension]):
        self.dimensions: dict[str, Dimension] = {}
        for dim in dimensions:
            key = normalise_name(dim.name)
            if key in self.dimensions:
                raise ValueError(f"dimension table lists {dim.name!r} twice")
            self.dimensions[key] = dim

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> DimensionTable:
        return cls(Dimension.model_validate(dict(row)) for row in rows)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions.values()]

    def resolve(self, tag: str) -> Dimension | None:
        return self.dimensions.get(normalise_name(tag))

    def criterion(self, dimension: Dimension, variables: Mapping[str, str]) -> RubricCriterion:
        return RubricCriterion(
            name=dimension.name,
            guiding_question=expand_placeholders(dimension.guiding_question, variables),
            observable_indicators=expand_placeholders(dimension.observable_indicators, variables),
            scoring=dimension.scoring,
        )


def expand_placeholders(text: str, variables: Mapping[str, str]) -> str:
    """Replace `{{name}}` placeholders; any other braces in the text are left exactly as they are.

    A placeholder with no value is left in place (visible to reviewers) rather than blanked.
    """

    def substitute(match: re.Match[str]) -> str:
        value = variables.get(match.group(1))
        return match.group(0) if value is None else value

    return _PLACEHOLDER.sub(substitute, text)
