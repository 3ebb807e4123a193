"""What a generated corpus actually contains, measured on the corpus (not on what was asked for).

`corpus_stats(rows, spec, manifests)` streams the rows once and reports:

- template-grid coverage: which institution x domain x doc_type x reasoning cells got a document
  (cells covered, of the grid and of those asked for; per-axis counts, axis values with none);
- lexical diversity: distinct-n (distinct n-grams / all n-grams, n = 1..3) on up to
  `diversity_sample` documents drawn by reservoir sampling (seeded), so memory stays bounded at a
  million documents (distinct-n falls with corpus size: compare corpora at the same sample size);
- the spec's key phrases per 1k tokens (the "lexical repetition" principle), tokens estimated as
  words / `WORDS_PER_TOKEN` like the prompts' length targets, and the share of documents using each;
- length distribution (words per document: quantiles and a histogram);
- the explicit-preaching filter's hit rate: documents dropped as `preaching` over documents that
  reached the filters, from the shards' manifests (unknown, not 0, without manifests).

`caml-train corpus-report DIR` prints it, writes `corpus_report.json` and a PNG beside the corpus.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from caml_train.generate.prompts import WORDS_PER_TOKEN
from caml_train.generate.spec import GenerationSpec

_WORD = re.compile(r"\w+", re.UNICODE)
AXES = ("institution", "domain", "doc_type", "reasoning")
_AXIS_FIELDS = {
    "institution": "institutions",
    "domain": "domains",
    "doc_type": "doc_types",
    "reasoning": "reasoning",
}


class Coverage(BaseModel):
    grid_size: int
    cells_covered: int
    cells_requested: int | None = Field(None, description="n asked for (from the manifests)")
    share_of_grid: float
    per_axis: dict[str, dict[str, int]]
    axis_values_without_documents: dict[str, list[str]]
    cells_with_several_documents: int


class PhraseStat(BaseModel):
    phrase: str
    count: int
    per_1k_tokens: float
    share_of_documents: float


class Lengths(BaseModel):
    documents: int
    mean_words: float
    quantiles_words: dict[str, float]
    histogram_edges: list[float]
    histogram_counts: list[int]


class PreachingRate(BaseModel):
    hits: int | None
    checked: int | None
    rate: float | None
    source: str


class CorpusStats(BaseModel):
    spec: str
    documents: int
    words: int
    estimated_tokens: int
    coverage: Coverage
    distinct_n: dict[str, float]
    diversity_sample: int
    key_phrases: list[PhraseStat]
    lengths: Lengths
    preaching: PreachingRate
    malformed_lines: int = 0

    def lines(self) -> list[str]:
        c, l = self.coverage, self.lengths
        out = [
            f"documents: {self.documents:,} ({self.words:,} words, ~{self.estimated_tokens:,} tokens)",
            f"grid coverage: {c.cells_covered:,} of {c.grid_size:,} cells ({c.share_of_grid:.1%})"
            + (f", {c.cells_requested:,} requested" if c.cells_requested else ""),
        ]
        for axis, missing in c.axis_values_without_documents.items():
            if missing:
                out.append(f"  {axis}: no documents for {', '.join(missing)}")
        out.append(
            "distinct-n ("
            + f"{self.diversity_sample:,} docs): "
            + ", ".join(f"{k} {v:.3f}" for k, v in self.distinct_n.items())
        )
        q = l.quantiles_words
        out.append(
            f"length (words): mean {l.mean_words:.0f}, p10 {q['p10']:.0f}, median {q['p50']:.0f},"
            f" p90 {q['p90']:.0f}, max {q['max']:.0f}"
        )
        for p in self.key_phrases:
            out.append(
                f"key phrase {p.phrase!r}: {p.per_1k_tokens:.2f} per 1k tokens,"
                f" in {p.share_of_documents:.0%} of documents"
            )
        pr = self.preaching
        rate = f"{pr.rate:.1%} ({pr.hits} of {pr.checked})" if pr.rate is not None else "unknown"
        out.append(f"preaching filter hit rate: {rate} [{pr.source}]")
        if self.malformed_lines:
            out.append(f"malformed lines skipped and counted: {self.malformed_lines}")
        return out


def _word_hashes(words: list[str]) -> np.ndarray:
    """CRC-32 of each word: 4 bytes a word in the diversity sample instead of a Python string."""
    return np.fromiter((zlib.crc32(w.encode()) for w in words), dtype=np.uint64, count=len(words))


def distinct_n(sample: list[np.ndarray], n: int) -> float:
    """Distinct n-grams / all n-grams over the sample (n-grams hashed to 64 bits, counted with
    numpy: a 5,000-document sample of 2,500-word texts is ~100 MB at the peak, not gigabytes of
    tuples)."""
    grams = []
    with np.errstate(over="ignore"):
        for w in sample:
            if len(w) < n:
                continue
            h = w[: len(w) - n + 1].copy()
            for j in range(1, n):
                h = h * np.uint64(0x100000001B3) + w[j : len(w) - n + 1 + j]
            grams.append(h)
    if not grams:
        return 0.0
    flat = np.concatenate(grams)
    return float(np.unique(flat).size / flat.size)


def _preaching(manifests: list[dict[str, Any]]) -> PreachingRate:
    if not manifests:
        return PreachingRate(hits=None, checked=None, rate=None, source="no manifest found")
    hits = checked = 0
    for m in manifests:
        hits += int(m.get("dropped", {}).get("preaching", 0))
        # every reply of a document run reaches the filters; the preaching check is one of them
        checked += int(m.get("counts", {}).get("replies", 0))
    rate = hits / checked if checked else None
    return PreachingRate(
        hits=hits, checked=checked, rate=rate, source=f"{len(manifests)} manifest(s)"
    )


def corpus_stats(
    rows: Iterable[dict[str, Any]],
    spec: GenerationSpec,
    manifests: list[dict[str, Any]] | None = None,
    *,
    diversity_sample: int = 5000,
    seed: int = 0,
    malformed_lines: int = 0,
) -> CorpusStats:
    manifests = manifests or []
    rng = random.Random(seed)
    sample: list[np.ndarray] = []
    cells: Counter[tuple[str, ...]] = Counter()
    per_axis: dict[str, Counter[str]] = {a: Counter() for a in AXES}
    phrases = [p.casefold() for p in spec.key_phrases]
    phrase_res = [re.compile(r"(?<!\w)" + re.escape(p) + r"(?!\w)") for p in phrases]
    phrase_counts = [0] * len(phrases)
    phrase_docs = [0] * len(phrases)
    lengths: list[int] = []  # one int per document: 8 MB at a million
    words_total = docs = 0
    for row in rows:
        text = str(row.get("text", ""))
        low = text.casefold()
        words = _WORD.findall(low)
        docs += 1
        words_total += len(words)
        lengths.append(len(words))
        params = row.get("params") or {}
        key = tuple(str(params.get(a, "")) for a in AXES)
        cells[key] += 1
        for a, v in zip(AXES, key):
            per_axis[a][v] += 1
        for i, pattern in enumerate(phrase_res):
            k = len(pattern.findall(low))
            phrase_counts[i] += k
            phrase_docs[i] += k > 0
        if len(sample) < diversity_sample:
            sample.append(_word_hashes(words))
        else:
            j = rng.randrange(docs)
            if j < diversity_sample:
                sample[j] = _word_hashes(words)
    distinct = {f"distinct-{n}": distinct_n(sample, n) for n in (1, 2, 3)}
    tokens = round(words_total / WORDS_PER_TOKEN)
    grid = spec.grid
    missing = {a: [v for v in getattr(grid, _AXIS_FIELDS[a]) if per_axis[a][v] == 0] for a in AXES}
    requested = None
    if manifests:
        requested = sum(int(m.get("counts", {}).get("planned", 0)) for m in manifests)
    arr = np.array(lengths or [0])
    counts, edges = np.histogram(arr, bins=min(30, max(1, len(set(lengths)))))
    return CorpusStats(
        spec=spec.name,
        documents=docs,
        words=words_total,
        estimated_tokens=tokens,
        coverage=Coverage(
            grid_size=grid.size,
            cells_covered=len(cells),
            cells_requested=requested,
            share_of_grid=len(cells) / grid.size,
            per_axis={a: dict(sorted(c.items())) for a, c in per_axis.items()},
            axis_values_without_documents=missing,
            cells_with_several_documents=sum(1 for v in cells.values() if v > 1),
        ),
        distinct_n=distinct,
        diversity_sample=len(sample),
        key_phrases=[
            PhraseStat(
                phrase=spec.key_phrases[i],
                count=phrase_counts[i],
                per_1k_tokens=1000 * phrase_counts[i] / tokens if tokens else 0.0,
                share_of_documents=phrase_docs[i] / docs if docs else 0.0,
            )
            for i in range(len(phrases))
        ],
        lengths=Lengths(
            documents=docs,
            mean_words=float(arr.mean()) if lengths else 0.0,
            quantiles_words={
                name: float(np.quantile(arr, q))
                for name, q in (("min", 0), ("p10", 0.1), ("p50", 0.5), ("p90", 0.9), ("max", 1))
            },
            histogram_edges=[float(e) for e in edges],
            histogram_counts=[int(c) for c in counts],
        ),
        preaching=_preaching(manifests),
        malformed_lines=malformed_lines,
    )


def plot(stats: CorpusStats, path: Path) -> Path:
    """A four-panel PNG: lengths, key phrases per 1k tokens, per-axis coverage, distinct-n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax = axes[0][0]
    edges = stats.lengths.histogram_edges
    ax.bar(edges[:-1], stats.lengths.histogram_counts, width=np.diff(edges), align="edge")
    ax.set(title="length (words per document)", xlabel="words", ylabel="documents")
    ax = axes[0][1]
    names = [p.phrase for p in stats.key_phrases]
    ax.barh(names, [p.per_1k_tokens for p in stats.key_phrases])
    ax.set(title="key phrases per 1k tokens")
    ax = axes[1][0]
    axis_names = list(stats.coverage.per_axis)
    covered = [sum(1 for v in stats.coverage.per_axis[a].values() if v) for a in axis_names]
    absent = [len(stats.coverage.axis_values_without_documents[a]) for a in axis_names]
    ax.bar(axis_names, covered, label="values with documents")
    ax.bar(axis_names, absent, bottom=covered, label="values without")
    ax.set(
        title=f"grid coverage: {stats.coverage.cells_covered} of {stats.coverage.grid_size} cells"
    )
    ax.legend()
    ax = axes[1][1]
    ax.bar(list(stats.distinct_n), list(stats.distinct_n.values()))
    ax.set(title=f"distinct-n ({stats.diversity_sample} documents)", ylim=(0, 1))
    rate = stats.preaching.rate
    fig.suptitle(
        f"{stats.spec}: {stats.documents} documents; preaching filter hit rate "
        + (f"{rate:.1%}" if rate is not None else "unknown")
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def read_rows(files: list[Path]) -> tuple[Iterator[dict[str, Any]], list[int]]:
    """Stream the rows of corpus files; the second value counts malformed lines as it goes."""
    bad = [0]

    def gen() -> Iterator[dict[str, Any]]:
        for f in files:
            with f.open(encoding="utf-8") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError:
                        bad[0] += 1
                        continue
                    if isinstance(row, dict) and isinstance(row.get("text"), str):
                        yield row
                    else:
                        bad[0] += 1

    return gen(), bad
