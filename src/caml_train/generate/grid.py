"""The template grid: the cross product institutions x domains x doc_types x reasoning, sampled
deterministically without replacement and split into shards.

Cells are addressed by a flat index in mixed radix (institution slowest, reasoning fastest), so a
sample is just a set of integers: `random.Random(seed).sample(range(size), n)` never materialises
the 112,000-cell product, never repeats a cell, and gives the same list on every machine. Shards take
every `count`-th item of that list (`items[index::count]`), so shards partition the sample exactly and
each shard sees a similar mix of cells.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from caml_train.generate.spec import TemplateGrid

T = TypeVar("T")


class TemplateParams(BaseModel):
    """One cell of the grid; stored with every generated row as `params`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    institution: str
    domain: str
    doc_type: str
    reasoning: str


def cell(grid: TemplateGrid, index: int) -> TemplateParams:
    """The cell at flat `index` of the cross product."""
    if not 0 <= index < grid.size:
        raise IndexError(f"grid index {index} outside 0..{grid.size - 1}")
    index, r = divmod(index, len(grid.reasoning))
    index, t = divmod(index, len(grid.doc_types))
    i, d = divmod(index, len(grid.domains))
    return TemplateParams(
        institution=grid.institutions[i],
        domain=grid.domains[d],
        doc_type=grid.doc_types[t],
        reasoning=grid.reasoning[r],
    )


def sample_indices(size: int, n: int, seed: int) -> list[int]:
    """`n` distinct flat indices out of `size`, in a seed-determined order."""
    if n > size:
        raise ValueError(f"cannot draw {n} cells without replacement from a grid of {size}")
    if n < 0:
        raise ValueError("n must be >= 0")
    return random.Random(seed).sample(range(size), n)


def sample_grid(grid: TemplateGrid, n: int, seed: int) -> list[TemplateParams]:
    """`n` distinct cells of the grid, deterministic in `seed`."""
    return [cell(grid, i) for i in sample_indices(grid.size, n, seed)]


class Shard(BaseModel):
    """Shard `index` of `count` (0-based: `--shard 0/8` ... `--shard 7/8`)."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(0, ge=0)
    count: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _in_range(self) -> Shard:
        if self.index >= self.count:
            raise ValueError(
                f"shard index {self.index} must be < count {self.count} (indices are 0-based)"
            )
        return self

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise ValueError(f"shard must look like INDEX/COUNT (e.g. 2/8), got {text!r}")
        return cls(index=int(match.group(1)), count=int(match.group(2)))

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def suffix(self) -> str:
        """File-name suffix; empty for the unsharded run."""
        return "" if self.count == 1 else f".shard-{self.index:03d}-of-{self.count:03d}"

    def select(self, items: Sequence[T]) -> list[T]:
        return list(items[self.index :: self.count])
