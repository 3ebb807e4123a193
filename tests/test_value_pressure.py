"""value_pressure: the shipped set is valid and balanced; it loads, scores and takes the probes."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model

from caml_evals.cards import card
from caml_evals.datasource import DataSourceError
from caml_evals.errors import TaskArgumentError
from caml_evals.resources import benchmark_path
from caml_evals.tasks.value_pressure.dataset import PRESSURES, TARGETS, value_pressure_dataset
from caml_evals.tasks.value_pressure.task import value_pressure


def _jsonl(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_shipped_set_is_complete_balanced_and_every_tag_resolves(monkeypatch):
    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    rows = _jsonl(benchmark_path("value_pressure/questions.jsonl"))
    dims = {d["dimension"] for d in _jsonl(benchmark_path("value_pressure/dimensions.jsonl"))}
    assert len(rows) >= 40
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["question"] for r in rows}) == len(rows)
    tags = Counter(t.strip() for r in rows for t in r["dimension_tags"].split(","))
    assert set(tags) == dims and min(tags.values()) >= 8, tags
    assert Counter(r["source"] for r in rows).keys() == set(PRESSURES)
    assert min(Counter(r["source"] for r in rows).values()) >= 6
    assert set(Counter(r["target"] for r in rows)) == set(TARGETS)
    dataset, report, origins = value_pressure_dataset()
    assert len(dataset) == len(rows) and not report.problems
    assert [o.kind for o in origins] == ["packaged", "packaged"]
    sample = dataset[0]
    assert sample.metadata["target"] in TARGETS and sample.metadata["source"] in PRESSURES
    assert card("value_pressure").group == "probe"


def test_a_bad_tag_is_reported_and_a_missing_data_dir_is_one_error(tmp_path):
    folder = tmp_path / "value_pressure"
    folder.mkdir()
    rows = _jsonl(benchmark_path("value_pressure/questions.jsonl"))[:3]
    rows[1]["dimension_tags"] = "Moral Consideration,Not A Dimension"
    (folder / "questions.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (folder / "dimensions.jsonl").write_text(
        benchmark_path("value_pressure/dimensions.jsonl").read_text(encoding="utf-8")
    )
    dataset, report, _ = value_pressure_dataset(data_dir=str(tmp_path))
    assert len(dataset) == 3 and report.problems  # kept, and the unknown tag reported
    assert "Not A Dimension" in report.summary()
    with pytest.raises(DataSourceError):
        value_pressure_dataset(data_dir=str(tmp_path / "absent"))


def _judge(prompt: str) -> str:
    names = re.findall(r"^\d+\. (.+)$", prompt, re.MULTILINE)
    return json.dumps(
        {
            "grades": [
                {"dimension": n, "reason": "r", "meets": n == "Moral Consideration"} for n in names
            ]
        }
    )


def test_scored_per_dimension_pressure_and_target(tmp_path):
    log = inspect_eval(
        value_pressure(),
        model=get_model("scripted/answerer", reply="An answer.", memoize=False),
        model_roles={"grader": get_model("scripted/judge", responder=_judge, memoize=False)},
        display="none",
        log_dir=str(tmp_path),
        limit=8,
    )[0]
    assert log.status == "success", log.error
    metrics = {k: v.value for k, v in log.results.scores[0].metrics.items()}
    assert metrics["Moral Consideration"] == 1.0 and metrics["Actionability"] == 0.0
    assert "target=animals" in metrics and "source=replacement" in metrics
    assert metrics["missing_rate"] == 0.0
    assert log.eval.metadata["benchmark"] == "value_pressure"
    assert "probe" not in log.eval.metadata


def test_probe_parameters_reach_the_task():
    task = value_pressure(pushback="skip_ethics")
    assert task.metadata["probe"]["pushback"] == "skip_ethics"
    assert len(task.scorer) == 2
    assert value_pressure(cot=True).metadata["probe"] == {"cot": True}
    with pytest.raises(TaskArgumentError, match="known"):
        value_pressure(prefill="not_a_prefill")
