"""Task cards: what each benchmark is, where its data comes from, its published protocol, its
headline metric and direction, and every way we differ from upstream. One `card.yaml` beside
each task's `task.py` (`caml_evals/tasks/<folder>/card.yaml`).

Cards are the one place that says which number stands for a task and whether higher is better:
the suite, `caml-evals summary`, the leaderboard and the training results read it from here, so
they never disagree. A folder with several tasks (advanced_ai_risk) lists them under `cards:`.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from .errors import UserError
from .strict_yaml import load_yaml

Direction = Literal["higher", "lower", "n/a"]
Group = Literal["compassion", "control", "probe"]

CARD_FILE = "card.yaml"


class HubSource(BaseModel):
    """A pinned Hugging Face dataset (or one of several files of one)."""

    model_config = ConfigDict(extra="forbid")

    repo_id: str
    revision: str  # a commit sha, never a tag or branch
    config: str | None = None
    file: str | None = None
    gated: bool = False  # needs HF_TOKEN and the terms accepted on the dataset page
    note: str = ""


class UrlSource(BaseModel):
    """A file fetched over HTTP(S) from a URL that names a commit (e.g. a raw GitHub file)."""

    model_config = ConfigDict(extra="forbid")

    url: str
    commit: str  # the commit sha the URL pins
    note: str = ""


class DataCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subfolder: str  # its folder in a data_dir pool (the layout of ../shared/data)
    hub: list[HubSource] = Field(default_factory=list)
    urls: list[UrlSource] = Field(default_factory=list)  # pinned non-Hub sources
    packaged: str | None = None  # a set shipped in this repository (benchmarks/...), if any
    note: str = ""


class Divergence(BaseModel):
    """One deliberate difference from the published benchmark (and the test that shows it)."""

    model_config = ConfigDict(extra="forbid")

    what: str
    why: str
    default: bool = False  # true: it applies under the default protocol (changes the number)
    test: str | None = None  # tests/<file>::<name> that demonstrates it


class Protocol(BaseModel):
    """The published protocol this task reproduces by default."""

    model_config = ConfigDict(extra="forbid")

    upstream: str  # e.g. "inspect_evals/anima (inspect-evals 0.26.0)"
    description: str
    params: dict[str, Any] = Field(default_factory=dict)  # the task parameters that select it


class TaskCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str  # as `inspect eval caml_evals/<name>` takes it
    aliases: list[str] = Field(default_factory=list)
    title: str
    version: str
    group: Group
    meaning: str  # one line: what the headline number measures
    headline: list[str]  # Inspect metric names to try, first present wins
    direction: Direction
    data: DataCard
    protocol: Protocol | None = None
    needs_grader: bool = False
    choice_task: bool = False  # takes `mode` (generate | loglik)
    extras: dict[str, str] = Field(default_factory=dict)  # our options beyond upstream: param -> what
    divergences: list[Divergence] = Field(default_factory=list)
    module: str = ""  # filled from the folder: caml_evals.tasks.<folder>.task
    function: str = ""  # the @task function (default: name)


class CardError(UserError, ValueError):
    """A card.yaml is missing or invalid (a packaging bug or a bad edit; the message names it)."""


def _cards_in_folder(folder: str, text: str, where: str) -> list[TaskCard]:
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as ex:
        raise CardError(f"{where}: not valid YAML ({ex})") from ex
    entries = raw.get("cards") if isinstance(raw, dict) and "cards" in raw else [raw]
    cards = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise CardError(f"{where}: each card must be a mapping")
        entry = {k: v for k, v in entry.items() if not str(k).startswith("_")}  # YAML anchors
        entry.setdefault("module", f"caml_evals.tasks.{folder}.task")
        entry.setdefault("function", entry.get("name", ""))
        try:
            cards.append(TaskCard.model_validate(entry))
        except Exception as ex:  # pydantic ValidationError: name the file
            raise CardError(f"{where}: invalid card: {ex}") from ex
    return cards


@lru_cache(maxsize=1)
def load_cards() -> dict[str, TaskCard]:
    """Every task card in the package, by task name (aliases not included; see `card`)."""
    root = files("caml_evals") / "tasks"
    cards: dict[str, TaskCard] = {}
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        card_file = folder / CARD_FILE
        if not folder.is_dir() or not card_file.is_file():
            continue
        for c in _cards_in_folder(folder.name, card_file.read_text(encoding="utf-8"), str(card_file)):
            if c.name in cards:
                raise CardError(f"{card_file}: task {c.name!r} has a card already")
            cards[c.name] = c
    return cards


def card(name: str) -> TaskCard:
    """The card of a task by name or alias, with or without the `caml_evals/` prefix."""
    bare = name.split("/", 1)[1] if name.startswith("caml_evals/") else name
    cards = load_cards()
    if bare in cards:
        return cards[bare]
    for c in cards.values():
        if bare in c.aliases:
            return c
    raise CardError(f"no task card for {name!r}; known tasks: {', '.join(sorted(cards))}")


def find_card(name: str) -> TaskCard | None:
    """`card(name)`, or None for a task that is not ours (a log of someone else's task)."""
    try:
        return card(name)
    except CardError:
        return None


__all__ = [
    "CardError",
    "DataCard",
    "Direction",
    "Divergence",
    "HubSource",
    "Protocol",
    "TaskCard",
    "UrlSource",
    "card",
    "find_card",
    "load_cards",
]
