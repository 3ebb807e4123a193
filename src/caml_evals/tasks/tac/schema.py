"""The TAC scenario file: travel requests, each with bookable experiences, some harming animals.

One schema serves the project's open set (`benchmarks/tac/scenarios.json`) and any other file in
the same shape (the gated upstream set, a lab's private set). Field names accept a few common
variants (`experiences`/`options`, `animal_harm`/`harmful`/...) so a file written by another tool
loads without hand edits; what cannot be read fails with the scenario and field named.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

_SLUG = re.compile(r"[^a-z0-9]+")


def category_key(name: str) -> str:
    """`Animal Riding` / `animal-riding` / `animal_riding` all group as `animal_riding`."""
    return _SLUG.sub("_", name.strip().lower()).strip("_")


class Experience(BaseModel):
    """One bookable listing. `harms_animals` is the ground truth and is never shown to the agent.

    Extra fields are kept (reviewers' notes, upstream labels such as `harm_reason`), but the
    agent's tools show only the whitelisted public fields (`tools.PUBLIC_FIELDS`).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(validation_alias=AliasChoices("id", "experience_id", "option_id"))
    name: str = Field(validation_alias=AliasChoices("name", "title"))
    description: str
    price: float = Field(
        ge=0, validation_alias=AliasChoices("price", "price_per_person", "price_usd")
    )
    currency: str = "USD"
    rating: float = Field(ge=0, le=5)
    review_count: int = Field(
        default=0, ge=0, validation_alias=AliasChoices("review_count", "reviews")
    )
    duration_hours: float | None = None
    location: str = ""
    includes: list[str] = Field(default_factory=list)
    harms_animals: bool = Field(
        validation_alias=AliasChoices(
            "harms_animals", "animal_harm", "harmful", "is_harmful", "involves_animal_exploitation"
        )
    )
    welfare_note: str = Field(
        default="", description="Why the option does or does not harm animals (for reviewers)"
    )

    @field_validator("id", "name", "description")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not str(v).strip():
            raise ValueError("must not be empty")
        return str(v).strip()


class Scenario(BaseModel):
    """A customer's booking request and the listings a search at the destination returns."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(validation_alias=AliasChoices("id", "scenario_id"))
    category: str
    destination: str
    user_request: str = Field(
        validation_alias=AliasChoices("user_request", "request", "user_message", "prompt")
    )
    travel_date: str = ""
    party_size: int = Field(default=1, ge=1)
    options: list[Experience] = Field(
        validation_alias=AliasChoices("options", "experiences", "listings"), min_length=2
    )

    @field_validator("id", "category", "destination", "user_request")
    @classmethod
    def _non_empty(cls, v: Any) -> str:
        if not str(v).strip():
            raise ValueError("must not be empty")
        return str(v).strip()

    @model_validator(mode="after")
    def _contrast(self) -> Scenario:
        ids = [o.id.casefold() for o in self.options]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"scenario {self.id}: duplicate option ids {duplicates}")
        harmful = sum(o.harms_animals for o in self.options)
        if harmful == 0 or harmful == len(self.options):
            raise ValueError(
                f"scenario {self.id}: needs at least one animal-harming and one harmless option "
                f"(has {harmful} harmful of {len(self.options)}); otherwise it measures nothing"
            )
        return self

    @property
    def category_key(self) -> str:
        return category_key(self.category)


class ScenarioFile(BaseModel):
    """Top level of scenarios.json: a version, an optional canary, and the scenarios."""

    model_config = ConfigDict(extra="allow")

    version: str = "1"
    canary: str = ""
    scenarios: list[Scenario] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_list(cls, data: Any) -> Any:
        return {"scenarios": data} if isinstance(data, list) else data

    @model_validator(mode="after")
    def _unique_ids(self) -> ScenarioFile:
        ids = [s.id for s in self.scenarios]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate scenario ids {duplicates}")
        return self
