"""AHB loading and validation on the real AHB 2.1 data and on small hand-written bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caml_evals.datasource import DataSourceError
from caml_evals.tasks.ahb.dataset import ahb_dataset, build_samples, parse_variables
from caml_evals.tasks.ahb.languages import normalise_language


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_real_row_is_accounted_for(ahb_dir: Path) -> None:
    dataset, report = ahb_dataset(ahb_dir.parent)
    raw_ids = {str(r["id"]) for r in _rows(ahb_dir / "questions.jsonl")}
    assert report.rows == len(raw_ids) == 115
    sample_questions = {s.metadata["question_id"] for s in dataset}
    assert sample_questions == raw_ids  # no row dropped (the peer loads 114)
    assert len(dataset) == report.samples > 115  # variable expansions add samples
    empty = [p for p in report.problems if p.kind == "empty_tag"]
    assert [p.question_id for p in empty] == ["58"]
    assert report.counts() == {"empty_tag": 1}
    assert "empty_tag: 1 (ids 58: empty dimension tag)" in report.summary()


def test_row_with_empty_tag_keeps_its_valid_dimensions(ahb_dir: Path) -> None:
    dataset, _ = ahb_dataset(ahb_dir.parent)
    raw = next(r for r in _rows(ahb_dir / "questions.jsonl") if r["id"] == 58)
    sample = next(s for s in dataset if s.metadata["question_id"] == "58")
    assert "" in raw["tags"]
    assert sample.metadata["dimensions"] == [t for t in raw["tags"] if t.strip()]


def test_variables_expand_into_samples_and_guiding_questions(ahb_dir: Path) -> None:
    dataset, _ = ahb_dataset(ahb_dir.parent)
    raw = next(r for r in _rows(ahb_dir / "questions.jsonl") if r["variables"] == "animal:farmed pig,wild boar")
    samples = [s for s in dataset if s.metadata["question_id"] == str(raw["id"])]
    assert [s.metadata["variables"] for s in samples] == [{"animal": "farmed pig"}, {"animal": "wild boar"}]
    assert len({s.id for s in samples}) == 2
    for s in samples:
        animal = s.metadata["variables"]["animal"]
        for criterion in s.metadata["rubric"]:
            assert "{{animal}}" not in criterion["guiding_question"]
        mc = next(c for c in s.metadata["rubric"] if c["name"] == "Moral Consideration")
        assert f"{animal}s involved" in mc["guiding_question"]


def test_unexpanded_rows_leave_no_placeholder_behind(ahb_dir: Path) -> None:
    dataset, _ = ahb_dataset(ahb_dir.parent)
    plain = [s for s in dataset if not s.metadata["variables"]]
    assert plain
    # questions without variables keep the placeholder visible rather than a blank
    texts = [c["guiding_question"] for s in plain for c in s.metadata["rubric"]]
    assert all("{{" not in t or "{{animal}}" in t for t in texts)


@pytest.mark.parametrize(
    "languages, expected",
    [(["Bengali"], {"Bengali"}), (["bn"], {"Bengali"}), (["bangla"], {"Bengali"}), (["en"], {"English"})],
)
def test_language_filter_normalises_names_and_codes(ahb_dir: Path, languages, expected) -> None:
    dataset, _ = ahb_dataset(ahb_dir.parent, languages=languages)
    assert len(dataset) > 0
    assert {s.metadata["language"] for s in dataset} == expected


def test_bangla_and_bengali_are_one_language(ahb_dir: Path) -> None:
    rows = _rows(ahb_dir / "questions.jsonl")
    n = sum(1 for r in rows if r["language"] in ("Bangla", "Bengali"))
    dataset, _ = ahb_dataset(ahb_dir.parent, languages=["Bengali"])
    assert len({s.metadata["question_id"] for s in dataset}) == n == 3
    assert normalise_language(None) == "English"


def test_dimension_filter_restricts_samples_and_rubric(ahb_dir: Path) -> None:
    dataset, _ = ahb_dataset(ahb_dir.parent, dimensions=["  sentience ACKNOWLEDGEMENT "])
    assert len(dataset) > 0
    for s in dataset:
        assert s.metadata["dimensions"] == ["Sentience Acknowledgement"]
        assert [c["name"] for c in s.metadata["rubric"]] == ["Sentience Acknowledgement"]
    with pytest.raises(ValueError, match="unknown dimension"):
        ahb_dataset(ahb_dir.parent, dimensions=["Kindness"])


DIMS = [
    {"dimension": "Moral Consideration", "guiding_question": "Does it consider {{animal}}s?",
     "scoring": "1/0", "observable_indicators": "Uses {braces} and {{unknown}} and } stray"},
    {"dimension": "Harm Minimization", "guiding_question": "Does it reduce harm?", "scoring": "1/0",
     "observable_indicators": ""},
]


def test_bad_rows_are_reported_never_dropped() -> None:
    questions = [
        {"id": 1, "question": "Q1", "tags": [" moral consideration", "Kindness"], "variables": "animal:cat, dog"},
        {"id": 1, "question": "Q1 again", "tags": ["Harm Minimization"], "variables": None},
        {"id": 2, "question": "Q2", "tags": ["Nope"], "variables": "animal"},
        {"id": 3, "question": "", "tags": ["Harm Minimization"], "variables": None},
    ]
    samples, report, _ = build_samples(questions, DIMS, "fixture")
    kinds = report.counts()
    assert kinds == {"unknown_tag": 2, "duplicate_id": 1, "no_valid_tags": 1, "bad_variables": 1, "invalid_row": 1}
    by_q = {}
    for s in samples:
        by_q.setdefault(s.metadata["question_id"], []).append(s)
    assert set(by_q) == {"1", "1~2", "2"}  # the duplicate keeps a distinct id; invalid row reported
    assert [s.metadata["variables"]["animal"] for s in by_q["1"]] == ["cat", "dog"]
    assert by_q["1"][0].metadata["dimensions"] == ["Moral Consideration"]
    assert by_q["2"][0].metadata["dimensions"] == []  # kept: scores as missing
    indicators = by_q["1"][0].metadata["rubric"][0]["observable_indicators"]
    assert indicators == "Uses {braces} and {{unknown}} and } stray"


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("animal:farmed pig,wild boar", {"animal": ["farmed pig", "wild boar"]}),
        ("animal: guinea pig, naked mole rats", {"animal": ["guinea pig", "naked mole rats"]}),
        ("animal:x;place:farm,zoo", {"animal": ["x"], "place": ["farm", "zoo"]}),
        (None, {}),
    ],
)
def test_parse_variables(spec, expected) -> None:
    assert parse_variables(spec) == expected


@pytest.mark.parametrize("spec", ["animal", "animal:", ":cat", "animal:x;animal:y"])
def test_parse_variables_rejects_malformed(spec) -> None:
    with pytest.raises(ValueError):
        parse_variables(spec)


def test_data_dir_env_var_and_direct_folder(ahb_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("CAML_EVALS_DATA_DIR", str(ahb_dir.parent))
    via_env, _ = ahb_dataset()
    direct, _ = ahb_dataset(ahb_dir)  # the benchmark folder itself also works
    assert len(via_env) == len(direct) > 0


def test_offline_hub_gives_actionable_error(monkeypatch) -> None:
    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataSourceError, match="offline mode.*data_dir"):
        ahb_dataset()


def test_missing_local_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="ahb-2.1"):
        ahb_dataset(tmp_path)


def test_malformed_jsonl_line_is_reported_with_its_number(tmp_path: Path, ahb_dir: Path) -> None:
    folder = tmp_path / "ahb-2.1"
    folder.mkdir()
    (folder / "dimensions.jsonl").write_text((ahb_dir / "dimensions.jsonl").read_text())
    (folder / "questions.jsonl").write_text('{"id": 0, "question": "ok", "tags": []}\n{broken\n')
    with pytest.raises(DataSourceError, match="line 2"):
        ahb_dataset(tmp_path)
