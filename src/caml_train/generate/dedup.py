"""Near-duplicate removal with MinHash LSH in bounded memory, streaming, in corpus order.

Generators at temperature 1 still converge on stock documents for similar cells; near-copies add
weight to one text without adding content. Texts are shingled into word n-grams, hashed with MinHash,
and looked up in an LSH index in corpus order: the first text of a cluster is kept, each later one
whose estimated Jaccard similarity to a kept text reaches the threshold is dropped and records which
text it duplicates. Corpus order is the seeded sample order, so the result is deterministic.

Built for a million documents:
- the index lives in SQLite on disk (one row per (band bucket, kept text), one per kept text's
  signature, one per id seen) with SQLite's page cache capped (`cache_mib`), so memory holds one
  batch of texts whatever the corpus size (datasketch's in-memory `MinHashLSH` keeps every band of
  every text in Python dicts: gigabytes at this scale);
- signatures are computed in numpy, one array operation per text over all its shingles and
  permutations, and the index is queried and filled once per batch (`batch_size` texts), not once
  per text: datasketch hashes each shingle in a Python call (about 0.35 ms per short text here).
  Band and row counts are datasketch's optimum for the threshold (`_optimal_param`, as in
  `MinHashLSH`); the permutations are affine maps mod 2^32 of a mixed 64-bit shingle hash, as in
  datasketch's default scheme. Words are hashed with CRC-32 and n-grams combined polynomially
  (a word collision is about 1 in 4 billion pairs; it can only raise a similarity estimate);
  a band bucket is a 64-bit hash of the band (a collision only adds a candidate: every candidate
  is verified on its full signature).
- ids are checked unique through the same index (`on_duplicate_id`: raise, or report the repeat
  as a duplicate of nothing), so merging a shard twice is caught.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from typing_extensions import Self

_WORD = re.compile(r"\w+", re.UNICODE)
_POLY = np.uint64(0x100000001B3)  # FNV-64 prime: n-gram = sum(word_k * P^k) mod 2^64
CHUNK_SHINGLES = 8192  # shingles per numpy pass: 8192 x 128 permutations x 4 bytes = 4 MiB


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit (uint64, wrapping)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _ngram_hashes(w: np.ndarray, k: int) -> np.ndarray:
    """Mixed 32-bit hashes (as uint64) of the k-word windows of word hashes `w`."""
    with np.errstate(over="ignore"):
        h = w[: len(w) - k + 1].copy()
        for j in range(1, k):
            h = h * _POLY + w[j : len(w) - k + 1 + j]
    return _mix64(h) >> np.uint64(32)


def shingle_hashes(text: str, n: int) -> np.ndarray:
    """32-bit hashes of the text's word n-grams (all its words as one shingle when fewer than n;
    none for a text without words). Repeats are harmless: MinHash takes a minimum."""
    words = _words(text)
    if not words:
        return np.empty(0, dtype=np.uint64)
    w = np.fromiter((zlib.crc32(x.encode()) for x in words), dtype=np.uint64, count=len(words))
    return _ngram_hashes(w, min(n, len(words)))


@dataclass(frozen=True)
class Permutations:
    """`num_perm` affine maps x -> (a*x + b) mod 2^32 (a odd: a bijection), seeded."""

    a: np.ndarray
    b: np.ndarray

    @classmethod
    def make(cls, num_perm: int, seed: int = 1) -> Permutations:
        rng = np.random.default_rng(seed)
        a = rng.integers(1, 1 << 32, size=num_perm, dtype=np.uint64) | np.uint64(1)
        b = rng.integers(0, 1 << 32, size=num_perm, dtype=np.uint64)
        return cls(a=a.astype(np.uint32), b=b.astype(np.uint32))

    def _permute(self, hashes: np.ndarray) -> np.ndarray:
        """(shingles, permutations) uint32: uint32 arithmetic wraps mod 2^32 by itself."""
        with np.errstate(over="ignore"):
            return hashes.astype(np.uint32)[:, None] * self.a + self.b

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        """MinHash signature (uint32, one value per permutation); all-max for no shingles."""
        out = np.full(self.a.size, 0xFFFFFFFF, dtype=np.uint32)
        for start in range(0, hashes.size, CHUNK_SHINGLES):  # bounded temporaries
            chunk = self._permute(hashes[start : start + CHUNK_SHINGLES])
            np.minimum(out, chunk.min(axis=0), out=out)
        return out

    def signatures(self, texts: list[str], n: int) -> np.ndarray:
        """Signatures of many texts (rows): the same values as `signature(shingle_hashes(t, n))`
        for each text, from a handful of numpy passes over the whole batch (word hashes, n-gram
        windows that do not cross a text's end, then `CHUNK_SHINGLES` at a time of permutations
        and per-text minima)."""
        out = np.full((len(texts), self.a.size), 0xFFFFFFFF, dtype=np.uint32)
        word_lists = [_words(t) for t in texts]
        lens = np.fromiter((len(w) for w in word_lists), dtype=np.int64, count=len(texts))
        total = int(lens.sum())
        if total == 0:
            return out
        w = np.fromiter(
            (zlib.crc32(x.encode()) for ws in word_lists for x in ws), dtype=np.uint64, count=total
        )
        doc_of_word = np.repeat(np.arange(len(texts)), lens)
        starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
        parts_h, parts_doc = [], []
        if total >= n:
            with np.errstate(over="ignore"):
                h = w[: total - n + 1].copy()
                for j in range(1, n):
                    h = h * _POLY + w[j : total - n + 1 + j]
            doc = doc_of_word[: total - n + 1]
            valid = (np.arange(total - n + 1) - starts[doc]) <= lens[doc] - n
            parts_h.append(h[valid])
            parts_doc.append(doc[valid])
        short = np.nonzero((lens > 0) & (lens < n))[0]  # one shingle of all their words
        for i in short.tolist():
            parts_h.append(_poly_all(w[starts[i] : starts[i] + lens[i]]))
            parts_doc.append(np.array([i]))
        hashes = _mix64(np.concatenate(parts_h)) >> np.uint64(32)
        docs = np.concatenate(parts_doc)
        if short.size:
            order = np.argsort(docs, kind="stable")
            hashes, docs = hashes[order], docs[order]
        for lo in range(0, hashes.size, CHUNK_SHINGLES):
            chunk_docs = docs[lo : lo + CHUNK_SHINGLES]
            phv = self._permute(hashes[lo : lo + CHUNK_SHINGLES])
            bounds = np.concatenate(([0], np.nonzero(np.diff(chunk_docs))[0] + 1))
            ids = chunk_docs[bounds]
            out[ids] = np.minimum(out[ids], np.minimum.reduceat(phv, bounds, axis=0))
        return out


def _poly_all(w: np.ndarray) -> np.ndarray:
    """The n-gram hash of all of `w` (a text shorter than the shingle size), as a 1-array."""
    with np.errstate(over="ignore"):
        h = w[:1].copy()
        for j in range(1, len(w)):
            h = h * _POLY + w[j : j + 1]
    return h


def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising false positives + negatives at `threshold` (datasketch's rule)."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, 0.5, 0.5)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity: the share of permutations whose minima agree."""
    return float(np.count_nonzero(a == b)) / a.size


@dataclass(frozen=True)
class Duplicate:
    """`id` repeats `of` (an earlier kept text) at estimated Jaccard `similarity`; `of` is None and
    similarity 1.0 when the id itself was seen before."""

    id: str
    of: str | None
    similarity: float


class DuplicateIdError(ValueError):
    """The same id was passed twice (a shard file merged twice, or two rows with one id)."""


class StreamingDeduper:
    """Greedy near-duplicate filter in corpus order over an SQLite index (module docstring).

    `filter(items)` streams `(id, None | Duplicate)` for `(id, text)` items in order (None: kept and
    indexed). `path=None` puts the index in a temporary folder removed on `close()`; a given `path`
    persists, and a later deduper on it continues the same corpus (e.g. a new shard).
    """

    def __init__(
        self,
        *,
        threshold: float = 0.8,
        num_perm: int = 128,
        shingle_words: int = 5,
        path: str | Path | None = None,
        cache_mib: int = 32,
        batch_size: int = 1000,
        on_duplicate_id: str = "raise",
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        if on_duplicate_id not in ("raise", "report"):
            raise ValueError("on_duplicate_id must be 'raise' or 'report'")
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_words = shingle_words
        self.batch_size = max(1, batch_size)
        self.bands, self.rows = optimal_bands(threshold, num_perm)
        self.on_duplicate_id = on_duplicate_id
        self._perms = Permutations.make(num_perm)
        rng = np.random.default_rng(7)
        self._band_mult = rng.integers(1, 1 << 63, size=self.rows, dtype=np.uint64) | np.uint64(1)
        self._band_salt = rng.integers(0, 1 << 63, size=self.bands, dtype=np.uint64)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="caml-dedup-")
            path = Path(self._tmp.name) / "index.sqlite"
        self.path = Path(path)
        self._db: sqlite3.Connection | None = sqlite3.connect(self.path, isolation_level=None)
        self._db.executescript(
            f"""
            PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;
            PRAGMA cache_size=-{int(cache_mib) * 1024};
            CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS sig (n INTEGER PRIMARY KEY, id TEXT, hv BLOB);
            CREATE TABLE IF NOT EXISTS band (bucket INTEGER, n INTEGER, PRIMARY KEY (bucket, n))
                WITHOUT ROWID;
            CREATE TEMP TABLE q_bucket (bucket INTEGER PRIMARY KEY);
            CREATE TEMP TABLE q_id (id TEXT PRIMARY KEY);
            """
        )
        self._next = self._db.execute("SELECT COALESCE(MAX(n) + 1, 0) FROM sig").fetchone()[0]
        self.kept = 0
        self.dropped = 0

    def buckets(self, sigs: np.ndarray) -> np.ndarray:
        """Band buckets (signed 64-bit, SQLite's INTEGER) of signature rows: shape (rows, bands)."""
        sigs = np.atleast_2d(sigs)
        bands = sigs[:, : self.bands * self.rows].astype(np.uint64)
        bands = bands.reshape(len(sigs), self.bands, self.rows)
        with np.errstate(over="ignore"):
            folded = (bands * self._band_mult).sum(axis=2, dtype=np.uint64) + self._band_salt
        return _mix64(folded).view(np.int64)

    def _batch(self, batch: list[tuple[str, str]]) -> list[tuple[str, Duplicate | None]]:
        db = self._db
        if db is None:
            raise RuntimeError("deduper is closed")
        sigs = self._perms.signatures([t for _, t in batch], self.shingle_words)
        bucket_array = self.buckets(sigs)
        buckets = bucket_array.tolist()
        db.execute("BEGIN")
        try:
            db.execute("DELETE FROM q_bucket")
            db.execute("DELETE FROM q_id")
            db.execute(
                "INSERT OR IGNORE INTO q_bucket SELECT value FROM json_each(?)",
                (json.dumps(bucket_array.ravel().tolist()),),
            )
            db.executemany("INSERT OR IGNORE INTO q_id VALUES (?)", ((i,) for i, _ in batch))
            seen = {
                r[0] for r in db.execute("SELECT id FROM seen WHERE id IN (SELECT id FROM q_id)")
            }
            index: dict[int, list[int]] = {}
            kept_sig: dict[int, tuple[str, np.ndarray]] = {}
            for bucket, n, item_id, blob in db.execute(
                "SELECT b.bucket, s.n, s.id, s.hv FROM band b JOIN sig s ON s.n = b.n"
                " WHERE b.bucket IN (SELECT bucket FROM q_bucket)"
            ):
                index.setdefault(bucket, []).append(n)
                if n not in kept_sig:
                    kept_sig[n] = (item_id, np.frombuffer(blob, dtype=np.uint32))
            out: list[tuple[str, Duplicate | None]] = []
            new_sig, new_band, new_seen = [], [], []
            for (item_id, _), sig, bs in zip(batch, sigs, buckets):
                if item_id in seen:
                    if self.on_duplicate_id == "raise":
                        raise DuplicateIdError(f"duplicate id {item_id!r} passed to dedup")
                    self.dropped += 1
                    out.append((item_id, Duplicate(id=item_id, of=None, similarity=1.0)))
                    continue
                seen.add(item_id)
                new_seen.append((item_id,))
                candidates = sorted({n for b in bs for n in index.get(b, ())})
                found: Duplicate | None = None
                for n in candidates:  # in corpus order: the first match is the earliest kept text
                    other_id, other = kept_sig[n]
                    s = similarity(sig, other)
                    if s >= self.threshold:
                        found = Duplicate(id=item_id, of=other_id, similarity=s)
                        break
                if found is None:
                    n = self._next
                    self._next += 1
                    kept_sig[n] = (item_id, sig)
                    for b in bs:
                        index.setdefault(b, []).append(n)
                    new_sig.append((n, item_id, sig.tobytes()))
                    new_band.append((n, bs))
                    self.kept += 1
                else:
                    self.dropped += 1
                out.append((item_id, found))
            db.executemany("INSERT INTO seen VALUES (?)", new_seen)
            db.executemany("INSERT INTO sig VALUES (?, ?, ?)", new_sig)
            # one JSON parameter per batch: SQLite unpacks it in C (executemany binds row by row)
            db.execute(
                "INSERT OR IGNORE INTO band SELECT b.value, json_extract(k.value, '$[0]')"
                " FROM json_each(?) k, json_each(json_extract(k.value, '$[1]')) b",
                (json.dumps(new_band),),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return out

    def filter(self, items: Iterable[tuple[str, str]]) -> Iterator[tuple[str, Duplicate | None]]:
        """Stream (id, None | Duplicate) for (id, text) items, in order, a batch at a time."""
        it = iter(items)
        while batch := list(islice(it, self.batch_size)):
            yield from self._batch(batch)

    def check(self, item_id: str, text: str) -> Duplicate | None:
        return self._batch([(item_id, text)])[0][1]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def find_near_duplicates(
    items: Iterable[tuple[str, str]],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    shingle_words: int = 5,
) -> dict[str, tuple[str, float]]:
    """Map id -> (id of the earlier kept text it duplicates, estimated Jaccard) for dropped items.
    Raises DuplicateIdError when an id repeats."""
    out: dict[str, tuple[str, float]] = {}
    with StreamingDeduper(
        threshold=threshold, num_perm=num_perm, shingle_words=shingle_words
    ) as dedup:
        for item_id, dup in dedup.filter(items):
            if dup is not None and dup.of is not None:
                out[item_id] = (dup.of, dup.similarity)
    return out
