"""The files of a calibration round, as pydantic models.

Two files come out of `judge export`, on purpose separate:

* the **rating set** (public): what raters see — question, answer, the criterion and the rubric
  text the judge saw — under opaque ids, in a seeded shuffled order, with no model, judge, log or
  sample identity;
* the **key** (private, kept by whoever runs the study): for each item id, which log, sample,
  epoch, dimension and criterion it came from and every judge grade, so judge ratings can be
  aligned with the human ones afterwards.

An item is one (answer, criterion). A criterion is a dimension, or one expansion of it when its
guiding question has a placeholder filled with several variable values (AHB: `{{animal}}` with
`farmed pig` and `wild boar`); each expansion is graded, and so rated, on its own. `criterion` is
the scorer's label ("Moral Consideration [animal: wild boar]"), equal to `dimension` when there
are no variables: files written before criteria existed load unchanged, their items keyed by
dimension.

Human ratings (from the app or imported) are `HumanRating` rows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import DataSourceError
from ..outputs import write_text

RATING_SET_FORMAT = "caml-evals/rating-set/v1"
# The longest comment a rating may carry (the app answers 422, an import reports the line):
# a note for the study, not a document; keeps a database and its report a sane size.
MAX_COMMENT_CHARS = 10_000
KEY_FORMAT = "caml-evals/rating-key/v1"

_YES = {"yes", "y", "true", "1", "1.0", "pass"}
_NO = {"no", "n", "false", "0", "0.0", "fail"}


class RubricText(BaseModel):
    """One criterion as the judge saw it: placeholders expanded with its variable values.

    `name` is the dimension; `label` the criterion label the judge was asked to grade ("" in
    files from before criteria: then the name); `variables` the values it was expanded with.
    """

    model_config = ConfigDict(extra="ignore")

    name: str
    guiding_question: str = ""
    observable_indicators: str = ""
    scoring: str = ""
    label: str = ""
    variables: dict[str, str] = Field(default_factory=dict)


def _criterion_of(criterion: str, dimension: str) -> str:
    return criterion or dimension


class RatingItem(BaseModel):
    """One (answer, criterion) to rate. `unit_id` is the page: the criteria of one answer,
    or the item alone with `--per-item-pages`.

    `criterion` and `variables` default to the rubric's label and variables (how the store
    keeps them), and the criterion to the dimension (rating sets from before criteria).
    """

    item_id: str
    unit_id: str
    question: str
    answer: str
    dimension: str
    criterion: str = ""
    variables: dict[str, str] = Field(default_factory=dict)
    rubric: RubricText

    @model_validator(mode="after")
    def _default_criterion(self) -> RatingItem:
        self.criterion = _criterion_of(self.criterion or self.rubric.label, self.dimension)
        if not self.variables:
            self.variables = dict(self.rubric.variables)
        return self


class RatingSet(BaseModel):
    format: str = RATING_SET_FORMAT
    set_id: str
    seed: int
    created: str
    items: list[RatingItem]

    @model_validator(mode="after")
    def _unique_ids(self) -> RatingSet:
        ids = [i.item_id for i in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("rating set has duplicate item ids")
        return self


class JudgeGrade(BaseModel):
    """One grader's grade of one item: a value in [0, 1] or the reason there is none."""

    value: float | None = None
    missing: str | None = None


class KeySource(BaseModel):
    """One judging of an item: a rubric scorer in one log, with the grade of each grader."""

    label: str = Field(description="Short name of this judging (log/scorer), unique in the key")
    log: str
    task: str
    model: str = Field(description="The model under test (never shown to raters)")
    scorer: str
    mode: str | None = None
    template: str | None = None
    logprobs: bool = False
    grades: dict[str, JudgeGrade]


class KeyEntry(BaseModel):
    """Where one item came from. `(content_hash, criterion)` identifies it across logs."""

    item_id: str
    unit_id: str
    sample_id: str | int
    epoch: int
    dimension: str
    criterion: str = Field(
        default="",
        description="The criterion label (dimension + variable values); the dimension when "
        "there are none, or in keys written before criteria",
    )
    variables: dict[str, str] = Field(default_factory=dict)
    content_hash: str = Field(
        description="sha256 of sample id, epoch, question and answer: the answer's identity "
        "(aligns re-scored logs; the bootstrap clusters on it, whatever the page layout)"
    )
    sources: list[KeySource] = Field(default_factory=list)

    @model_validator(mode="after")
    def _default_criterion(self) -> KeyEntry:
        self.criterion = _criterion_of(self.criterion, self.dimension)
        return self


class RatingKey(BaseModel):
    format: str = KEY_FORMAT
    set_id: str
    seed: int
    created: str
    logs: list[str]
    items: dict[str, KeyEntry]


class HumanRating(BaseModel):
    """One rater's rating of one item.

    `value` is 1.0 (yes) / 0.0 (no), or any number in [0, 1] for labs that rated on a finer
    scale; `None` only together with `unsure=True` (the rater could not decide).
    """

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1)
    rater: str = Field(min_length=1)
    value: float | None = None
    unsure: bool = False
    comment: str = ""
    updated: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _parse_value(cls, v: Any) -> float | None:
        if v is None:
            return None
        if isinstance(v, bool):
            return 1.0 if v else 0.0
        if isinstance(v, str):
            text = v.strip().casefold()
            if text == "":
                return None
            if text in _YES:
                return 1.0
            if text in _NO:
                return 0.0
            try:
                f = float(text)
            except ValueError:
                raise ValueError(f"rating {v!r} is not yes/no or a number in [0, 1]") from None
        elif isinstance(v, (int, float)):
            f = float(v)
        else:
            raise ValueError(f"rating {v!r} is not yes/no or a number in [0, 1]")  # noqa: TRY004 - pydantic reports ValueError
        if math.isnan(f) or not 0.0 <= f <= 1.0:
            raise ValueError(f"rating {v!r} is outside [0, 1]")
        return f
        raise ValueError(f"rating {v!r} is not yes/no or a number in [0, 1]")

    @field_validator("unsure", mode="before")
    @classmethod
    def _parse_unsure(cls, v: Any) -> bool:
        if isinstance(v, str):
            text = v.strip().casefold()
            if text in ("", "0", "false", "no", "n"):
                return False
            if text in ("1", "true", "yes", "y"):
                return True
            raise ValueError(f"unsure {v!r} is not true/false")
        return bool(v) if v is not None else False

    @field_validator("updated", mode="before")
    @classmethod
    def _updated(cls, v: Any) -> str | None:
        return None if v is None or (isinstance(v, str) and not v.strip()) else str(v)

    @field_validator("comment", mode="before")
    @classmethod
    def _comment(cls, v: Any) -> str:
        return "" if v is None else str(v)

    @model_validator(mode="after")
    def _value_or_unsure(self) -> HumanRating:
        if self.value is None and not self.unsure:
            raise ValueError("a rating needs a value (yes/no) unless it is marked unsure")
        return self


def write_json(path: Path, model: BaseModel) -> None:
    """Write a model as JSON atomically (an OutputError names an unwritable path)."""
    write_text(path, model.model_dump_json(indent=2))


_M = TypeVar("_M", bound=BaseModel)


def _load(path: Path, model: type[_M], what: str, made_by: str) -> _M:
    """Read one of our JSON files; any problem is a one-line DataSourceError naming the file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DataSourceError(f"{path}: no such {what} file ({made_by})") from None
    except IsADirectoryError:
        raise DataSourceError(f"{path}: is a folder, not a {what} file ({made_by})") from None
    except OSError as ex:
        raise DataSourceError(f"{path}: cannot read the {what}: {ex.strerror or ex}") from None
    except UnicodeDecodeError as ex:
        raise DataSourceError(
            f"{path}: not a {what}: not UTF-8 text (byte at offset {ex.start})"
        ) from None
    if not text.strip():
        raise DataSourceError(f"{path}: the {what} file is empty ({made_by})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as ex:
        hint = " (truncated?)" if not text.rstrip().endswith(("}", "]")) else ""
        raise DataSourceError(
            f"{path}: not a {what}: invalid JSON at line {ex.lineno} column {ex.colno}: "
            f"{ex.msg}{hint}"
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as ex:
        first = ex.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "top level"
        more = f" (and {ex.error_count() - 1} more problem(s))" if ex.error_count() > 1 else ""
        raise DataSourceError(
            f"{path}: not a valid {what}: {loc}: {first['msg'].removeprefix('Value error, ')}{more}"
        ) from None


def load_rating_set(path: Path) -> RatingSet:
    return _load(path, RatingSet, "rating set", "made by `caml-evals judge export`")


def load_key(path: Path) -> RatingKey:
    return _load(path, RatingKey, "rating key", "made by `caml-evals judge export`")
