"""Template grid: cell addressing, seeded sampling without replacement, shards that partition."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from pydantic import ValidationError

from caml_train.generate.grid import Shard, cell, sample_grid, sample_indices
from caml_train.generate.spec import load_spec

FIXTURES = Path(__file__).parent / "fixtures" / "generate"


@pytest.fixture(scope="module")
def tiny():
    return load_spec(FIXTURES / "tiny_spec.yaml")


def test_flat_index_enumerates_the_cross_product_exactly(tiny) -> None:
    g = tiny.grid
    cells = [cell(g, i) for i in range(g.size)]
    as_tuples = {(c.institution, c.domain, c.doc_type, c.reasoning) for c in cells}
    expected = set(itertools.product(g.institutions, g.domains, g.doc_types, g.reasoning))
    assert as_tuples == expected and len(cells) == 24
    with pytest.raises(IndexError):
        cell(g, g.size)


def test_sampling_is_deterministic_and_without_replacement(tiny) -> None:
    a, b = sample_grid(tiny.grid, 24, seed=7), sample_grid(tiny.grid, 24, seed=7)
    assert a == b and len(set(a)) == 24  # the whole grid, each cell once
    assert sample_grid(tiny.grid, 24, seed=8) != a  # another seed, another order
    big = load_spec("animal_welfare").grid
    draw = sample_indices(big.size, 5000, seed=1)
    assert len(set(draw)) == 5000 and all(0 <= i < big.size for i in draw)
    assert draw == sample_indices(big.size, 5000, seed=1)
    with pytest.raises(ValueError, match="without replacement"):
        sample_indices(24, 25, seed=0)


@pytest.mark.parametrize(("n", "count"), [(24, 1), (24, 5), (10, 3), (7, 8), (1000, 7)])
def test_shards_partition_the_sample(n: int, count: int) -> None:
    items = list(range(n))
    shards = [Shard(index=i, count=count).select(items) for i in range(count)]
    flat = [x for s in shards for x in s]
    assert sorted(flat) == items  # every item in exactly one shard
    assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced


def test_shard_parsing() -> None:
    assert Shard.parse("2/8") == Shard(index=2, count=8)
    assert Shard.parse(" 0 / 1 ").suffix == ""
    assert Shard.parse("3/12").suffix == ".shard-003-of-012"
    for bad in ("8/8", "1-2", "a/b", "2/0"):
        with pytest.raises((ValueError, ValidationError)):
            Shard.parse(bad)
    with pytest.raises(ValueError, match="0-based"):
        Shard.parse("8/8")
