"""Human compassion: the shipped set is valid; loading, scoring and metrics on it and on fixtures."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import GenerateConfig, get_model

from caml_evals.datasource import DataSourceError
from caml_evals.resources import benchmark_path
from caml_evals.tasks.human_compassion.dataset import human_compassion_dataset
from caml_evals.tasks.human_compassion.task import human_compassion
from caml_evals.data.tagged import dimension_table

FIXTURES = Path(__file__).parent / "fixtures"


def _jsonl(path: Path) -> list[dict]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def test_shipped_set_is_complete_and_every_tag_resolves(monkeypatch):
    folder = benchmark_path("human_compassion")
    questions = _jsonl(folder / "questions.jsonl")
    table = dimension_table(_jsonl(folder / "dimensions.jsonl"), "shipped")
    assert len(questions) >= 40
    ids = [q["id"] for q in questions]
    assert len(ids) == len(set(ids)), "question ids must be unique"
    assert len({q["question"] for q in questions}) == len(questions), "no duplicated question text"
    used: Counter[str] = Counter()
    for q in questions:
        tags = [t.strip() for t in q["dimension_tags"].split(",")]
        assert 2 <= len(tags) <= 4, q["id"]
        for tag in tags:
            dim = table.resolve(tag)
            assert dim is not None and dim.name == tag, (
                f"{q['id']}: tag {tag!r} is not spelled as in the table"
            )
            used[dim.name] += 1
        assert q["language"] == "en" and q["source"]
    assert set(used) == set(table.names), "every dimension is used"
    assert min(used.values()) >= 8, "each dimension needs enough questions for a usable mean"
    for dim in table.dimensions.values():
        assert len(dim.observable_indicators.splitlines()) >= 4 and dim.guiding_question.endswith(
            "?"
        )
    assert {
        "Dignity",
        "Attention to Vulnerable People",
        "Scope Sensitivity",
        "Harm Minimisation",
        "Epistemic Humility",
    } <= set(table.names)
    assert (folder / "README.md").is_file()

    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    dataset, report = human_compassion_dataset()
    assert report.problems == [] and len(dataset) == len(questions)
    assert len({s.metadata["source"] for s in dataset}) >= 10


def test_data_dir_overrides_and_env_var_without_the_set_falls_back(tmp_path, monkeypatch):
    dataset, report = human_compassion_dataset(data_dir=str(FIXTURES))
    assert [s.id for s in dataset] == ["fx-1_en", "fx-2_en", "fx-3_en"]
    assert report.counts() == {"unknown_tag": 1}
    assert dataset[2].metadata["dimensions"] == ["Dignity"]
    with pytest.raises(DataSourceError):
        human_compassion_dataset(data_dir=str(tmp_path))  # explicit folder without the set
    monkeypatch.setenv("CAML_EVALS_DATA_DIR", str(tmp_path))  # env serves other benchmarks
    dataset, _ = human_compassion_dataset()
    assert len(dataset) >= 40


def test_questions_file_and_dimensions_file_override_their_part(tmp_path, monkeypatch):
    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    fixture = FIXTURES / "human_compassion"
    dataset, report = human_compassion_dataset(
        questions_file=str(fixture / "questions.jsonl"),
        dimensions_file=str(fixture / "dimensions.jsonl"),
    )
    assert [s.id for s in dataset] == ["fx-1_en", "fx-2_en", "fx-3_en"]
    assert report.source == str(fixture.resolve())  # both parts from one folder
    # only the questions given: the packaged dimension table judges them
    packaged = benchmark_path("human_compassion")
    first = _jsonl(packaged / "questions.jsonl")[:2]
    mine = tmp_path / "mine.jsonl"
    mine.write_text("\n".join(json.dumps(q) for q in first) + "\n", encoding="utf-8")
    dataset, report = human_compassion_dataset(questions_file=str(mine))
    assert len(dataset) == 2 and report.problems == []
    assert str(packaged) in report.source and str(mine) in report.source
    with pytest.raises(DataSourceError, match="does not exist"):
        human_compassion_dataset(dimensions_file=str(tmp_path / "absent.jsonl"))


def _judge(prompt: str) -> str:
    names = re.findall(r"^\d+\. (.+)$", prompt, re.MULTILINE)
    return json.dumps(
        {
            "grades": [
                {"dimension": n, "reason": "r", "meets": n in ("Dignity", "Actionability")}
                for n in names
            ]
        }
    )


def test_scored_per_dimension_and_source(tmp_path):
    log = inspect_eval(
        human_compassion(),
        model=get_model(
            "scripted/answerer", reply="Here is a kinder way to do this.", memoize=False
        ),
        model_roles={"grader": get_model("scripted/judge", responder=_judge, memoize=False)},
        display="none",
        log_dir=str(tmp_path),
        limit=6,
    )[0]
    assert log.status == "success", log.error
    metrics = {k: v.value for k, v in log.results.scores[0].metrics.items()}
    assert metrics["Dignity"] == 1.0 and metrics["Harm Minimisation"] == 0.0
    assert metrics["missing_rate"] == 0.0
    assert (
        "source=workplace" in metrics
        and "source=healthcare" in metrics
        and "language=en" in metrics
    )
    sample = log.samples[0]
    expected = sum(d in ("Dignity", "Actionability") for d in sample.metadata["dimensions"]) / len(
        sample.metadata["dimensions"]
    )
    assert sample.scores["rubric_scorer"].value["overall"] == pytest.approx(expected)


@pytest.mark.slow
def test_embedded_model_answers_and_grades_one_question(embedded_checkpoint, tmp_path):
    """Rubric path end to end on the local model: answer, then P(YES) grades per dimension."""
    log = inspect_eval(
        human_compassion(judge_mode="per_dimension", judge_logprobs=True),
        model=get_model("caml/smollm2", config=GenerateConfig(max_tokens=32)),
        model_roles={"grader": "caml/smollm2"},
        display="none",
        log_dir=str(tmp_path),
        limit=1,
    )[0]
    assert log.status == "success", log.error
    value = log.samples[0].scores["rubric_scorer"].value
    dims = log.samples[0].metadata["dimensions"]
    assert value["missing_rate"] == 0.0
    assert all(0.0 <= value[d] <= 1.0 for d in dims)
    assert not math.isnan(log.results.scores[0].metrics["overall"].value)
