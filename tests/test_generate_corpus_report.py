"""`caml-train corpus-report`: measured on a real generated corpus (scripted server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from caml_train.generate.cli import main
from caml_train.generate.corpus_report import corpus_stats
from caml_train.generate.spec import load_spec
from caml_train.generate.testing import ScriptedOpenAIServer, filler_text, user_text

FIXTURES = Path(__file__).parent / "fixtures" / "generate"
TINY = str(FIXTURES / "tiny_spec.yaml")


def _preachy(text: str) -> bool:
    return hashlib.sha256(text.encode()).digest()[0] % 4 == 0


def responder(body: dict, n: int) -> str:
    text = user_text(body)
    doc = (
        filler_text(text, 300) + " Our animal welfare audit found the animals' wellbeing improved."
    )
    if _preachy(text):
        doc += " In the end, you should care about animals."
    return doc


def test_corpus_report_on_a_generated_corpus(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    with ScriptedOpenAIServer(responder) as server:
        code = main(
            [
                "generate",
                "--spec",
                TINY,
                "--model",
                "openai/scripted",
                "--api-base",
                server.api_base,
                "--api-key",
                "x",
                "--out",
                str(out),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--n",
                "16",
            ]
        )
    assert code == 0
    capsys.readouterr()
    manifest = json.loads((out / "documents.manifest.json").read_text())
    corpus = [json.loads(x) for x in (out / "documents.jsonl").read_text().splitlines()]
    preaching = manifest["dropped"].get("preaching", 0)
    assert preaching and len(corpus) == 16 - preaching

    assert main(["corpus-report", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "corpus_report.json").read_text())
    png = (out / "corpus_report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert report["documents"] == len(corpus)
    cells = {tuple(r["params"].values()) for r in corpus}
    assert (
        report["coverage"]["cells_covered"] == len(cells) and report["coverage"]["grid_size"] == 24
    )
    assert report["coverage"]["cells_requested"] == 16
    assert sum(report["coverage"]["per_axis"]["domain"].values()) == len(corpus)
    assert report["preaching"]["hits"] == preaching and report["preaching"]["checked"] == 16
    assert f"{preaching / 16:.1%}" in printed
    phrase = {p["phrase"]: p for p in report["key_phrases"]}
    words = sum(len(r["text"].split()) for r in corpus)
    # each document names each phrase once; tokens are words / 0.75
    assert phrase["animal welfare"]["count"] == len(corpus)
    assert phrase["animal welfare"]["per_1k_tokens"] == pytest.approx(
        1000 * len(corpus) / (words / 0.75), rel=0.02
    )
    assert phrase["the animals' wellbeing"]["share_of_documents"] == 1.0
    d = report["distinct_n"]
    assert 0 < d["distinct-1"] < d["distinct-2"] <= d["distinct-3"] <= 1
    lengths = sorted(len(r["text"].split()) for r in corpus)
    assert report["lengths"]["quantiles_words"]["max"] >= lengths[-1] - 5  # \w+ vs whitespace words


def test_distinct_n_sample_is_bounded_and_unknown_preaching_is_not_zero() -> None:
    spec = load_spec(TINY)
    rows = (
        {"text": f"word{i} shared words here", "params": {"institution": "a city zoo"}}
        for i in range(300)
    )
    stats = corpus_stats(rows, spec, None, diversity_sample=50)
    assert stats.documents == 300 and stats.diversity_sample == 50
    assert stats.preaching.rate is None and "unknown" in "\n".join(stats.lines())
    assert stats.coverage.axis_values_without_documents["institution"] == [
        "a dairy cooperative",
        "a veterinary school",
    ]


def test_corpus_report_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["corpus-report", str(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "documents.jsonl").write_text('{"text": "x"}\n')
    assert main(["corpus-report", str(tmp_path)]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "--spec" in err[0]


def test_hashed_distinct_n_equals_the_exact_count() -> None:
    from caml_train.generate.corpus_report import _word_hashes, distinct_n

    texts = [filler_text(str(i), 120).casefold().replace(".", "").split() for i in range(30)]
    sample = [_word_hashes(t) for t in texts]
    for n in (1, 2, 3):
        grams = [tuple(t[i : i + n]) for t in texts for i in range(len(t) - n + 1)]
        assert distinct_n(sample, n) == pytest.approx(len(set(grams)) / len(grams))
