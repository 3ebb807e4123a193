"""The shipped probe sets (prefill openings, pushback turns): YAML files in `benchmarks/`.

One loader for both, so a typo in a name is the same one-line `TaskArgumentError` listing the
known names, and a malformed file is one `DataSourceError` naming the file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import DataSourceError, TaskArgumentError
from ..resources import benchmark_path
from ..strict_yaml import load_yaml

SetKind = Literal["prefills", "pushbacks"]
SET_FILES: dict[str, str] = {
    "prefills": "prefills/prefills.yaml",
    "pushbacks": "probes/pushback.yaml",
}


class ProbeText(BaseModel):
    """One named text of a probe set."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    text: str = Field(min_length=1)


class ProbeSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str
    prefills: dict[str, ProbeText] | None = None
    pushbacks: dict[str, ProbeText] | None = None


def read_set(path: Path, kind: SetKind) -> dict[str, ProbeText]:
    """The named texts of one set file; a malformed file is one DataSourceError naming it."""
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
        parsed = ProbeSet.model_validate(raw)
    except (OSError, yaml.YAMLError) as ex:
        raise DataSourceError(f"{path}: cannot read the {kind} set ({ex})") from None
    except ValidationError as ex:
        first = ex.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DataSourceError(f"{path}: {where}: {first['msg']}") from None
    texts = getattr(parsed, kind)
    if not texts:
        raise DataSourceError(f"{path}: no {kind} in the file")
    return texts


@cache
def shipped_set(kind: SetKind) -> dict[str, ProbeText]:
    return read_set(benchmark_path(SET_FILES[kind]), kind)


def lookup(kind: SetKind, name: str, param: str) -> ProbeText:
    """The shipped text called `name`, or a TaskArgumentError for `-T param=name`."""
    texts = shipped_set(kind)
    if name not in texts:
        raise TaskArgumentError(
            f"-T {param}={name!r} is not a shipped {kind[:-1]}; known: {', '.join(sorted(texts))}"
        )
    return texts[name]
