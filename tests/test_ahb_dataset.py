"""AHB loading and validation on the real AHB 2.1 data and on small hand-written bad rows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model

from caml_evals import datasource
from caml_evals.datasource import DataSourceError, TaskArgumentError
from caml_evals.tasks.ahb.dataset import ahb_dataset, build_samples, parse_variables
from caml_evals.tasks.ahb.languages import normalise_language
from caml_evals.tasks.ahb.task import ahb


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_real_row_is_accounted_for(ahb_dir: Path) -> None:
    dataset, report = ahb_dataset(ahb_dir.parent)
    raw_ids = {str(r["id"]) for r in _rows(ahb_dir / "questions.jsonl")}
    assert report.rows == len(raw_ids) == 115
    sample_questions = {s.metadata["question_id"] for s in dataset}
    assert sample_questions == raw_ids  # no row dropped (the peer loads 114)
    # one sample per question: variables expand inside the rubric, never into extra inputs
    assert len(dataset) == report.samples == 115
    assert len({s.id for s in dataset}) == 115
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


def test_variables_expand_into_criteria_of_one_sample(ahb_dir: Path) -> None:
    dataset, _ = ahb_dataset(ahb_dir.parent)
    raw = next(
        r
        for r in _rows(ahb_dir / "questions.jsonl")
        if r["variables"] == "animal:farmed pig,wild boar"
    )
    [sample] = [s for s in dataset if s.metadata["question_id"] == str(raw["id"])]
    assert sample.input == raw["question"]  # asked once
    assert sample.metadata["variables"] == {"animal": ["farmed pig", "wild boar"]}
    assert sample.metadata["dimensions"] == raw["tags"]  # each dimension once
    rubric = sample.metadata["rubric"]
    mc = [c for c in rubric if c["name"] == "Moral Consideration"]
    assert [c["variables"] for c in mc] == [{"animal": "farmed pig"}, {"animal": "wild boar"}]
    assert "farmed pigs involved" in mc[0]["guiding_question"]
    assert "wild boars involved" in mc[1]["guiding_question"]
    assert [c["label"] for c in mc] == [
        "Moral Consideration [animal: farmed pig]",
        "Moral Consideration [animal: wild boar]",
    ]
    # dimensions whose text has no placeholder are one criterion, not graded twice
    others = [c for c in rubric if c["name"] != "Moral Consideration"]
    assert len(others) == len(raw["tags"]) - 1 and all(c["variables"] == {} for c in others)
    # the four two-valued questions of AHB 2.1 each get exactly one extra criterion
    two_valued = {
        s.metadata["question_id"]: s
        for s in dataset
        if any(len(v) > 1 for v in s.metadata["variables"].values())
    }
    assert sorted(two_valued, key=int) == ["3", "9", "10", "17"]
    for s in two_valued.values():
        assert len(s.metadata["rubric"]) == len(s.metadata["dimensions"]) + 1


def _judge_prompts(dataset, mode: str, tmp_path: Path) -> list[str]:
    """Every prompt the rubric scorer sends a (scripted) grader for the real data."""
    prompts: list[str] = []

    def judge(prompt: str) -> str:
        prompts.append(prompt)
        return "GRADE: C" if mode == "per_dimension" else '{"grades": []}'

    task = ahb(data_dir=str(dataset), judge_mode=mode, epochs=1)
    [log] = inspect_eval(
        task,
        model=get_model("scripted/answer", memoize=False, reply="An answer."),
        model_roles={"grader": get_model("scripted/judge", memoize=False, responder=judge)},
        log_dir=str(tmp_path / mode),
        display="none",
        log_samples=False,
    )
    assert log.status == "success", log.error
    return prompts


@pytest.mark.parametrize("mode", ["single_call", "per_dimension"])
def test_no_placeholder_reaches_any_judge_prompt(ahb_dir: Path, tmp_path: Path, mode) -> None:
    prompts = _judge_prompts(ahb_dir.parent, mode, tmp_path)
    dataset, _ = ahb_dataset(ahb_dir.parent)
    n_criteria = sum(len(s.metadata["rubric"]) for s in dataset)
    assert len(prompts) == (n_criteria if mode == "per_dimension" else 115)
    assert not [p for p in prompts if "{{" in p]
    # questions without variables: the placeholder becomes its own name, as upstream does
    plain = next(
        s
        for s in dataset
        if not s.metadata["variables"] and "Moral Consideration" in s.metadata["dimensions"]
    )
    mc = next(c for c in plain.metadata["rubric"] if c["name"] == "Moral Consideration")
    assert "including animals involved" in mc["guiding_question"]
    if mode == "single_call":  # every expanded criterion is listed on its own line
        q10 = next(p for p in prompts if "farmed pig" in p and "wild boar" in p)
        listed = re.findall(r"^\d+\. (.+)$", q10, re.MULTILINE)
        assert "Moral Consideration [animal: farmed pig]" in listed
        assert "Moral Consideration [animal: wild boar]" in listed
        assert len(listed) == len(set(listed)) == 6


@pytest.mark.parametrize(
    "languages, expected",
    [
        (["Bengali"], {"Bengali"}),
        (["bn"], {"Bengali"}),
        (["bangla"], {"Bengali"}),
        (["en"], {"English"}),
    ],
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


def test_unknown_language_is_an_error_listing_the_known_ones(ahb_dir: Path) -> None:
    with pytest.raises(
        TaskArgumentError, match=r"unknown language\(s\) 'xx'.*known: .*Bengali.*English"
    ):
        ahb_dataset(ahb_dir.parent, languages=["en", "xx"])
    assert isinstance(TaskArgumentError("x"), ValueError)


DIMS = [
    {
        "dimension": "Moral Consideration",
        "guiding_question": "Does it consider {{animal}}s?",
        "scoring": "1/0",
        "observable_indicators": "Uses {braces} and {{unknown}} and } stray",
    },
    {
        "dimension": "Harm Minimization",
        "guiding_question": "Does it reduce harm?",
        "scoring": "1/0",
        "observable_indicators": "",
    },
]


def test_bad_rows_are_reported_never_dropped() -> None:
    questions = [
        {
            "id": 1,
            "question": "Q1",
            "tags": [" moral consideration", "Kindness"],
            "variables": "animal:cat, dog",
        },
        {"id": 1, "question": "Q1 again", "tags": ["Harm Minimization"], "variables": None},
        {"id": 2, "question": "Q2", "tags": ["Nope"], "variables": "animal"},
        {"id": 3, "question": "", "tags": ["Harm Minimization"], "variables": None},
    ]
    samples, report, _ = build_samples(questions, DIMS, "fixture")
    kinds = report.counts()
    assert kinds == {
        "unknown_tag": 2,
        "duplicate_id": 1,
        "no_valid_tags": 1,
        "bad_variables": 1,
        "invalid_row": 1,
    }
    by_q = {}
    for s in samples:
        by_q.setdefault(s.metadata["question_id"], []).append(s)
    assert set(by_q) == {"1", "1~2", "2"}  # the duplicate keeps a distinct id; invalid row reported
    [q1] = by_q["1"]
    assert q1.metadata["variables"] == {"animal": ["cat", "dog"]}
    assert q1.metadata["dimensions"] == ["Moral Consideration"]
    assert [c["guiding_question"] for c in q1.metadata["rubric"]] == [
        "Does it consider cats?",
        "Does it consider dogs?",
    ]
    assert by_q["2"][0].metadata["dimensions"] == []  # kept: scores as missing
    # single braces are left alone; a placeholder without a value becomes its own name
    indicators = q1.metadata["rubric"][0]["observable_indicators"]
    assert indicators == "Uses {braces} and unknown and } stray"


def test_row_without_id_is_kept_with_a_fallback_id_and_reported() -> None:
    questions = [
        {"question": "Q without id", "tags": ["Harm Minimization"]},
        {"id": None, "question": "Q with a null id", "tags": ["Harm Minimization"]},
        {"id": 7, "question": "Q7", "tags": ["Harm Minimization"]},
    ]
    samples, report, _ = build_samples(questions, DIMS, "fixture")
    assert [s.id for s in samples] == ["row0", "row1", 7]  # published int ids stay ints
    assert report.counts() == {"missing_id": 2}
    assert [p.question_id for p in report.problems] == ["row0", "row1"]
    assert "kept as row0" in report.summary()


def test_variable_used_in_the_question_text_needs_one_sample_per_value() -> None:
    questions = [
        {
            "id": 1,
            "question": "How do I keep {{animal}}s?",
            "tags": ["Moral Consideration"],
            "variables": "animal:cat,dog",
        }
    ]
    samples, _, _ = build_samples(questions, DIMS, "fixture")
    assert [(s.id, s.input) for s in samples] == [
        ("1-cat", "How do I keep cats?"),
        ("1-dog", "How do I keep dogs?"),
    ]
    assert {s.metadata["question_id"] for s in samples} == {"1"}  # one cluster
    assert [len(s.metadata["rubric"]) for s in samples] == [1, 1]
    assert samples[1].metadata["rubric"][0]["guiding_question"] == "Does it consider dogs?"


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


def test_offline_hub_gives_actionable_error(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(DataSourceError, match="offline mode.*not in the local HF cache.*data_dir"):
        ahb_dataset()


def test_offline_mode_still_reads_the_pinned_revision_from_the_hf_cache(
    monkeypatch, ahb_dir: Path
) -> None:
    """`datasets` serves a cached revision offline; we must try it before giving up."""
    import datasets

    calls = []

    def cached_load(repo_id, config, split, revision):
        calls.append((repo_id, config, split, revision))
        return _rows(ahb_dir / f"{config}.jsonl")

    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", cached_load)
    dataset, report = ahb_dataset()
    assert len(dataset) == 115 and report.source.startswith(
        "hf://CompassioninMachineLearning/anima@"
    )
    assert [c[1] for c in calls] == ["questions", "dimensions"]
    assert all(c[3] == "c658f00e80529c8b2d81bb89d95df6af4d4b5bf6" for c in calls)
    assert datasource.hub_offline()


def test_questions_and_dimensions_files(ahb_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    rows = _rows(ahb_dir / "questions.jsonl")[:5]
    questions = tmp_path / "my_questions.jsonl"
    questions.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    dataset, report = ahb_dataset(
        questions_file=str(questions), dimensions_file=str(ahb_dir / "dimensions.jsonl")
    )
    assert [s.id for s in dataset] == [r["id"] for r in rows]
    assert str(questions) in report.source and "dimensions.jsonl" in report.source
    # one file given, the other part from data_dir
    dataset, _ = ahb_dataset(ahb_dir.parent, questions_file=str(questions))
    assert len(dataset) == 5
    with pytest.raises(DataSourceError, match="questions file 'nope.jsonl' does not exist"):
        ahb_dataset(ahb_dir.parent, questions_file="nope.jsonl")


def _inspect_eval(args: list[str], cwd: Path, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "CAML_EVALS_DATA_DIR"}
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("inspect")),
            "eval",
            "caml_evals/ahb",
            "--model",
            "scripted/x",
            "--log-dir",
            str(cwd / "logs"),
            *args,
        ],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "args, env, message",
    [
        ([], {"HF_HUB_OFFLINE": "1"}, "offline mode is on"),
        (["-T", "data_dir=NOWHERE"], {}, "No 'ahb-2.1' data under"),
        (
            ["-T", "data_dir=SHARED", "-T", "dimensions=Kindness"],
            {},
            "unknown dimension 'Kindness'",
        ),
    ],
    ids=["offline-no-data", "missing-folder", "unknown-dimension"],
)
def test_inspect_cli_prints_data_errors_without_a_traceback(
    tmp_path: Path, ahb_dir: Path, args, env, message
) -> None:
    args = [
        a.replace("NOWHERE", str(tmp_path / "nowhere")).replace("SHARED", str(ahb_dir.parent))
        for a in args
    ]
    env = {**env, "HF_DATASETS_CACHE": str(tmp_path / "hf-cache"), "HF_HOME": str(tmp_path / "hf")}
    output = _inspect_eval(args, tmp_path, **env)
    assert message in output
    assert "Traceback" not in output


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
