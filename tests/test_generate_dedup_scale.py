"""Dedup at scale: the on-disk MinHash LSH index, the shard merge, bounded memory."""

from __future__ import annotations

import json
import random
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from caml_train.generate.cli import main
from caml_train.generate.dedup import (
    DuplicateIdError,
    Permutations,
    StreamingDeduper,
    find_near_duplicates,
    optimal_bands,
    shingle_hashes,
    similarity,
)
from caml_train.generate.testing import filler_text


def _row(i: str, text: str) -> dict:
    return {
        "id": i,
        "text": text,
        "spec": "tiny",
        "params": {"institution": "a", "domain": "b", "doc_type": "c", "reasoning": "d"},
        "model": "m",
        "prompt_hash": i,
    }


def _near_copy(text: str, seed: int) -> str:
    """The text with one sentence replaced: Jaccard well above 0.8."""
    sentences = text.split(". ")
    sentences[len(sentences) // 2] = f"An entirely different remark number {seed} appears here"
    return ". ".join(sentences)


def test_batch_signatures_equal_single_and_estimate_jaccard() -> None:
    perms = Permutations.make(128)
    texts = [filler_text(str(i), 50) for i in range(50)] + ["", "one two", "x " * 20000]
    batch = perms.signatures(texts, 5)
    single = np.stack([perms.signature(shingle_hashes(t, 5)) for t in texts])
    assert (batch == single).all()
    a, b = filler_text("a", 700), filler_text("b", 700)
    sa, sb = set(shingle_hashes(a, 5).tolist()), set(shingle_hashes(_near_copy(a, 1), 5).tolist())
    true = len(sa & sb) / len(sa | sb)
    est = similarity(
        perms.signature(shingle_hashes(a, 5)), perms.signature(shingle_hashes(_near_copy(a, 1), 5))
    )
    assert abs(est - true) < 0.1 and true > 0.9
    assert (
        similarity(perms.signature(shingle_hashes(a, 5)), perms.signature(shingle_hashes(b, 5)))
        < 0.2
    )


def test_streaming_dedup_keeps_the_first_of_each_cluster_across_batches(tmp_path: Path) -> None:
    base = [filler_text(f"doc{i}", 300) for i in range(40)]
    items = [(f"d{i}", t) for i, t in enumerate(base)]
    items += [(f"copy{i}", _near_copy(base[i], i)) for i in (3, 17, 39)]
    items += [("exact", base[0])]
    with StreamingDeduper(batch_size=7, path=tmp_path / "idx.sqlite") as dedup:
        out = dict(dedup.filter(items))
    dropped = {k: v.of for k, v in out.items() if v is not None}
    assert dropped == {"copy3": "d3", "copy17": "d17", "copy39": "d39", "exact": "d0"}
    # a persisted index continues the same corpus: a later near-copy of d5 is caught
    with StreamingDeduper(path=tmp_path / "idx.sqlite") as again:
        assert again.check("late", _near_copy(base[5], 99)).of == "d5"
        with pytest.raises(DuplicateIdError):
            again.check("d1", "whatever")
    with pytest.raises(DuplicateIdError):
        find_near_duplicates([("a", "x y z"), ("a", "x y z")])


def test_merge_removes_planted_near_duplicates_across_two_shards(tmp_path: Path, capsys) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    shard0 = [_row(f"s0-{i}", filler_text(f"s0-{i}", 400)) for i in range(30)]
    planted = {f"s1-dup{i}": f"s0-{i}" for i in (2, 11, 29)}
    shard1 = [_row(f"s1-{i}", filler_text(f"s1-{i}", 400)) for i in range(30)]
    shard1 += [
        _row(k, _near_copy(shard0[int(v.split("-")[1])]["text"], 5)) for k, v in planted.items()
    ]
    random.Random(0).shuffle(shard1)
    (a_dir / "documents.shard-000-of-002.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in shard0)
    )
    lines = [json.dumps(r) for r in shard1]
    lines.insert(4, "{not json")
    lines.insert(9, "caf\xe9")  # becomes latin-1 bytes below: not UTF-8
    lines.append(json.dumps(shard0[0]))  # the same id again: repeated, not a new document
    (b_dir / "documents.shard-001-of-002.jsonl").write_bytes(
        ("\n".join(lines) + "\n").encode("utf-8").replace("caf\xe9".encode(), b"caf\xe9")
    )
    (b_dir / "rejected").mkdir()
    (b_dir / "rejected" / "documents.shard-001-of-002.jsonl").write_text("ignored\n")
    out = tmp_path / "merged"
    assert main(["merge-shards", str(a_dir), str(b_dir), "--out", str(out)]) == 0
    assert "64 rows in, 60 written" in capsys.readouterr().out
    merged = [json.loads(x) for x in (out / "documents.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in merged]
    assert len(ids) == len(set(ids)) == 60 and not set(planted) & set(ids)
    assert merged[:30] == shard0  # rows unchanged, shard order kept
    rejected = [
        json.loads(x) for x in (out / "rejected" / "documents.merge.jsonl").read_text().splitlines()
    ]
    near = {r["id"]: r["duplicate_of"] for r in rejected if r["reason"] == "near_duplicate"}
    assert near == planted
    assert [r["id"] for r in rejected if r["reason"] == "duplicate_id"] == ["s0-0"]
    report = json.loads((out / "documents.merge.json").read_text())
    assert report["dropped"] == {"duplicate_id": 1, "near_duplicate": 3}
    shard1_path = str((b_dir / "documents.shard-001-of-002.jsonl").resolve())
    bad = [(m["path"], m["line"]) for m in report["malformed"]]
    assert bad == [(shard1_path, 5), (shard1_path, 10)]
    assert "not JSON" in report["malformed"][0]["error"]
    assert "not UTF-8" in report["malformed"][1]["error"]
    assert len(report["inputs"]) == 2 and all(len(i["sha256"]) == 64 for i in report["inputs"])


def test_merge_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["merge-shards", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "no documents" in err[0]
    assert main(["merge-shards", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.mark.slow  # ~30 s on a loaded 2-core box: tracemalloc traces every allocation
def test_memory_stays_bounded_on_100k_documents() -> None:
    """100k short generated documents: Python's peak allocation while deduping them (tracemalloc)
    stays within a few batches' worth (it would be >100 MiB for an in-memory index of 100k
    signatures and bands), and the process RSS, which also holds SQLite's capped page cache,
    grows by far less than that too."""
    rng = random.Random(1)
    vocab = [f"w{i}" for i in range(20000)]
    docs = [(f"d{i}", " ".join(rng.choices(vocab, k=12))) for i in range(100_000)]
    docs[70_000] = ("planted", docs[123][1])
    optimal_bands(0.8, 128)  # its one-time import (datasketch -> scipy) is not growth
    rss_before = _rss_mib()
    tracemalloc.start()
    started = time.monotonic()
    try:
        with StreamingDeduper(cache_mib=16, batch_size=1000) as dedup:
            dropped = {i: d.of for i, d in dedup.filter(docs) if d is not None}
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    seconds = time.monotonic() - started
    assert dropped.get("planted") == "d123" and len(dropped) < 50
    assert peak < 24 * 2**20, f"peak Python allocation {peak / 2**20:.1f} MiB"
    assert _rss_mib() - rss_before < 120, "RSS grew past the page cache and one batch"
    print(f"100k docs in {seconds:.1f} s, peak traced {peak / 2**20:.1f} MiB")
