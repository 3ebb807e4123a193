"""Near-duplicate removal with MinHash LSH (datasketch).

Generators at temperature 1 still converge on stock documents for similar cells; near-copies add
weight to one text without adding content. Texts are shingled into word n-grams, hashed with MinHash,
and looked up in an LSH index in corpus order: the first text of a cluster is kept, each later one
whose estimated Jaccard similarity to a kept text reaches the threshold is dropped and records which
text it duplicates. Corpus order is the seeded sample order, so the result is deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from datasketch import MinHash, MinHashLSH

_WORD = re.compile(r"\w+", re.UNICODE)


def shingles(text: str, n: int) -> set[bytes]:
    words = _WORD.findall(text.casefold())
    if len(words) < n:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)}


def minhash(text: str, n: int, num_perm: int) -> MinHash:
    m = MinHash(num_perm=num_perm, seed=1)
    for sh in shingles(text, n):
        m.update(sh)
    return m


def find_near_duplicates(
    items: Iterable[tuple[str, str]],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    shingle_words: int = 5,
) -> dict[str, tuple[str, float]]:
    """Map id -> (id of the earlier kept text it duplicates, estimated Jaccard) for dropped items."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept: dict[str, MinHash] = {}
    order: dict[str, int] = {}
    duplicates: dict[str, tuple[str, float]] = {}
    for item_id, text in items:
        if item_id in order:
            raise ValueError(f"duplicate id {item_id!r} passed to dedup")
        order[item_id] = len(order)
        m = minhash(text, shingle_words, num_perm)
        best: tuple[str, float] | None = None
        for candidate in lsh.query(m):
            similarity = m.jaccard(kept[candidate])
            if similarity >= threshold and (best is None or order[candidate] < order[best[0]]):
                best = (candidate, similarity)
        if best is not None:
            duplicates[item_id] = best
        else:
            lsh.insert(item_id, m)
            kept[item_id] = m
    return duplicates
