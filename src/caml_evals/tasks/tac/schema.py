"""The TAC scenario file, in the schema of the published benchmark (the gated Hub `scenarios.json`).

    {"canary": "...", "scenarios": [{"id", "category", "input", "harmful_ids": [...],
      "safe_ids": [...], "experiences": [{"id", "name", "location", "description", "price",
      "rating", "tags": [...]}]}]}

One schema serves the upstream file (v1 and v2), this project's open set
(`benchmarks/tac/scenarios.json`) and any lab's private file. Fields beyond these are kept but
optional (the open set's `destination`, `currency`, `review_count`, `welfare_note`, ...); the
agent's tools show only the listing fields the upstream tools show, so a label-like extra never
reaches the model. Numbers must be finite: `json` reads `Infinity`/`NaN`, and an infinite price
would silently turn the cheapest-option baseline around.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SLUG = re.compile(r"[^a-z0-9]+")


def category_key(name: str) -> str:
    """`Animal Riding` / `animal-riding` / `animal_riding` all group as `animal_riding`."""
    return _SLUG.sub("_", name.strip().lower()).strip("_")


def _non_empty(v: Any) -> str:
    """Reject blank text; keep it as written (ids are matched exactly, as upstream does)."""
    if not str(v).strip():
        raise ValueError("must not be empty")
    return str(v)


class Experience(BaseModel):
    """One bookable listing. Whether it harms animals is the scenario's `harmful_ids`, not a field
    here, exactly as upstream; extra fields are kept (and never shown to the agent)."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    location: str
    description: str
    # int | float keeps a file's `4` as 4: the tools print ratings as written ("4/5.0")
    price: int | float = Field(ge=0)
    rating: int | float = Field(ge=0, le=5)
    tags: list[str] = Field(default_factory=list)

    @field_validator("price", "rating", mode="before")
    @classmethod
    def _finite(cls, v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"must be a finite number, got {v!r} (NaN/Infinity are refused)")
        return v

    @field_validator("id", "name", "location", "description")
    @classmethod
    def _strip(cls, v: Any) -> str:
        return _non_empty(v)


class Scenario(BaseModel):
    """A customer's request (`input`) and the listings the booking platform holds for it.

    Every experience is classified exactly once, as harmful or as safe (upstream's rule: no
    unscored options), and each scenario needs at least one of each, or it measures nothing.
    """

    model_config = ConfigDict(extra="allow")

    id: str
    category: str
    input: str
    harmful_ids: list[str] = Field(min_length=1)
    safe_ids: list[str] = Field(min_length=1)
    experiences: list[Experience] = Field(min_length=2)
    # optional bookkeeping of this project's sets (never required of an upstream file)
    destination: str = ""

    @field_validator("id", "category", "input")
    @classmethod
    def _strip(cls, v: Any) -> str:
        return _non_empty(v)

    @model_validator(mode="after")
    def _classified(self) -> Scenario:
        ids = [e.id for e in self.experiences]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate experience ids {duplicates}")
        harmful, safe, known = set(self.harmful_ids), set(self.safe_ids), set(ids)
        problems = []
        if harmful & safe:
            problems.append(f"ids in both harmful_ids and safe_ids: {sorted(harmful & safe)}")
        if (harmful | safe) - known:
            problems.append(f"ids not among the experiences: {sorted((harmful | safe) - known)}")
        if known - harmful - safe:
            problems.append(f"experiences in neither list: {sorted(known - harmful - safe)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def category_key(self) -> str:
        return category_key(self.category)

    def is_harmful(self, experience_id: str) -> bool:
        return experience_id in self.harmful_ids


class ScenarioFile(BaseModel):
    """Top level of scenarios.json: the scenarios, a canary and an optional version label."""

    model_config = ConfigDict(extra="allow")

    version: str = ""
    canary: str = ""
    scenarios: list[Scenario] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> ScenarioFile:
        ids = [s.id for s in self.scenarios]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate scenario ids {duplicates}")
        return self
