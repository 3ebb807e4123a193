"""The shared rubric scorer and its metrics, driven by scripted graders through real Inspect evals."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from inspect_ai import Epochs, Task, eval
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import get_model
from inspect_ai.solver import generate

from caml_evals.scoring.clustered import clustered_mean_se
from caml_evals.scoring.dimensions import RubricCriterion, RubricSampleMetadata
from caml_evals.scoring.metrics import rubric_metrics
from caml_evals.scoring.reducers import nan_mean_reducer
from caml_evals.scoring.rubric import rubric_scorer

DIMS = ["Care", "Honesty", "Scope"]


def _sample(sid: str, qid: str, dims: list[str], text: str = "question") -> Sample:
    meta = RubricSampleMetadata(
        question_id=qid,
        dimensions=dims,
        rubric=[RubricCriterion(name=d, guiding_question=f"Does it show {d}? {{not a field}}",
                                observable_indicators="- mentions {x}") for d in dims],
        language="English",
    )
    return Sample(id=sid, input=text, target="", metadata=meta.model_dump())


SAMPLES = [
    _sample("a1", "a", ["Care", "Honesty"], "q about cats"),
    _sample("a2", "a", ["Care", "Honesty"], "q about dogs"),
    _sample("b", "b", ["Care", "Scope"], "q about fish"),
    _sample("c", "c", ["Honesty"], "q about bees"),
]


def _task(mode: str, epochs: int = 1, graders=None, **kw) -> Task:
    return Task(
        dataset=MemoryDataset(SAMPLES),
        solver=generate(),
        scorer=rubric_scorer(graders=graders, mode=mode, **kw),
        metrics=rubric_metrics(group_by=["language"]),
        epochs=Epochs(epochs, nan_mean_reducer()),
    )


def _run(task: Task, tmp_path: Path, **roles):
    [log] = eval(
        task,
        model=get_model("scripted/model", memoize=False, reply="An answer."),
        model_roles=roles,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    return log


def _metrics(log) -> dict[str, float]:
    return {k: m.value for s in log.results.scores for k, m in s.metrics.items()}


def _scores(log) -> dict[tuple[str, int], dict]:
    return {(str(s.id), s.epoch): s.scores["rubric_scorer"] for s in log.samples}


def _dims_in(prompt: str) -> list[str]:
    return re.findall(r"^\d+\. (\S+)$", prompt, re.MULTILINE)


def single_call(verdict):
    """A JSON judge: verdict(dimension, prompt) -> bool | None (None: leave it out)."""

    def respond(prompt: str) -> str:
        grades = [{"dimension": d, "meets": verdict(d, prompt), "reason": "r"} for d in _dims_in(prompt)]
        return "Here you go:\n```json\n" + json.dumps({"grades": [g for g in grades if g["meets"] is not None]}) + "\n```"

    return respond


def per_dimension(verdict):
    def respond(prompt: str) -> str:
        dim = re.search(r"\[Criterion\]: (\S+)", prompt).group(1)
        return f"Reasoning...\nGRADE: {'YES' if verdict(dim, prompt) else 'NO'}"

    return respond


@pytest.mark.parametrize("mode, make", [("single_call", single_call), ("per_dimension", per_dimension)])
def test_all_pass_and_all_fail(tmp_path: Path, mode, make) -> None:
    log = _run(_task(mode), tmp_path / "pass", grader=get_model("scripted/g", memoize=False, responder=make(lambda d, p: True)))
    m = _metrics(log)
    assert m["overall"] == 1.0 and m["missing_rate"] == 0.0
    assert all(m[d] == 1.0 for d in DIMS)
    log = _run(_task(mode), tmp_path / "fail", grader=get_model("scripted/g", memoize=False, responder=make(lambda d, p: False)))
    m = _metrics(log)
    assert m["overall"] == 0.0 and m["missing_rate"] == 0.0
    assert m["dimension_normalised_average"] == 0.0


def test_mixed_grades_give_means_per_dimension_and_normalised_average(tmp_path: Path) -> None:
    # Care passes, Honesty passes only for cats, Scope fails
    verdict = lambda d, p: d == "Care" or (d == "Honesty" and "cats" in p)
    log = _run(_task("single_call"), tmp_path, grader=get_model("scripted/g", memoize=False, responder=single_call(verdict)))
    scores = _scores(log)
    assert scores[("a1", 1)].value == {"overall": 1.0, "Care": 1.0, "Honesty": 1.0, "missing_rate": 0.0}
    assert scores[("b", 1)].value == {"overall": 0.5, "Care": 1.0, "Scope": 0.0, "missing_rate": 0.0}
    m = _metrics(log)
    assert m["Care"] == 1.0 and m["Scope"] == 0.0
    assert m["Honesty"] == pytest.approx(1 / 3)
    assert m["overall"] == pytest.approx(np.mean([1.0, 0.5, 0.5, 0.0]))
    assert m["dimension_normalised_average"] == pytest.approx(np.mean([1.0, 1 / 3, 0.0]))
    # clustered by question: a1 and a2 share question "a"
    expected_se = clustered_mean_se([1.0, 0.5, 0.5, 0.0], ["a", "a", "b", "c"])[1]
    assert m["overall_stderr"] == pytest.approx(expected_se)
    assert m["language=English"] == pytest.approx(m["overall"])


def test_unparseable_reply_is_missing_not_zero(tmp_path: Path) -> None:
    def judge(prompt: str) -> str:
        if "fish" in prompt:
            return "I think it is fine overall."  # no JSON at all
        return json.dumps({"grades": [{"dimension": d, "meets": True} for d in _dims_in(prompt)]})

    log = _run(_task("single_call"), tmp_path, grader=get_model("scripted/g", memoize=False, responder=judge))
    b = _scores(log)[("b", 1)]
    assert math.isnan(b.value["overall"]) and math.isnan(b.value["Care"])
    assert b.value["missing_rate"] == 1.0
    assert all(g["missing"].startswith("unparseable") for g in b.metadata["grades"])
    m = _metrics(log)
    assert m["overall"] == 1.0  # the missing sample is excluded, not averaged in as 0
    assert m["Scope"] != m["Scope"]  # NaN: Scope was only tagged on the unparseable sample
    assert m["missing_rate"] == pytest.approx(1 / 4)


def test_dimension_left_out_of_json_reply_is_missing(tmp_path: Path) -> None:
    verdict = lambda d, p: None if d == "Honesty" else True
    log = _run(_task("single_call"), tmp_path, grader=get_model("scripted/g", memoize=False, responder=single_call(verdict)))
    a1 = _scores(log)[("a1", 1)]
    assert a1.value["Care"] == 1.0 and math.isnan(a1.value["Honesty"])
    assert a1.value["missing_rate"] == 0.5
    reasons = {g["dimension"]: g["missing"] for g in a1.metadata["grades"]}
    assert "no grade for this dimension" in reasons["Honesty"]


def test_grader_error_is_recorded_with_reason(tmp_path: Path) -> None:
    def judge(prompt: str):
        if "Scope" in prompt and "[Criterion]: Scope" in prompt:
            return RuntimeError("rate limited for good")
        return "GRADE: YES"

    log = _run(_task("per_dimension"), tmp_path, grader=get_model("scripted/g", memoize=False, responder=judge))
    b = _scores(log)[("b", 1)]
    assert b.value["Care"] == 1.0 and math.isnan(b.value["Scope"])
    missing = [g for g in b.metadata["grades"] if g["missing"]]
    assert len(missing) == 1 and "grader error: RuntimeError: rate limited" in missing[0]["missing"]
    assert _metrics(log)["missing_rate"] == pytest.approx(0.5 / 4)


def test_several_graders_report_each_and_their_mean(tmp_path: Path) -> None:
    yes = get_model("scripted/yes", memoize=False, responder=single_call(lambda d, p: True))
    no = get_model("scripted/no", memoize=False, responder=single_call(lambda d, p: False))
    log = _run(_task("single_call", graders=["grader", "grader2"]), tmp_path, grader=yes, grader2=no)
    a1 = _scores(log)[("a1", 1)]
    assert a1.value["overall@grader"] == 1.0 and a1.value["overall@grader2"] == 0.0
    assert a1.value["Care"] == 0.5 and a1.value["overall"] == 0.5
    m = _metrics(log)
    assert m["overall@grader"] == 1.0 and m["overall@grader2"] == 0.0 and m["overall"] == 0.5


def test_role_bound_to_a_list_of_models(tmp_path: Path) -> None:
    yes = get_model("scripted/yes", memoize=False, responder=single_call(lambda d, p: True))
    no = get_model("scripted/no", memoize=False, responder=single_call(lambda d, p: False))
    log = _run(_task("single_call"), tmp_path, grader=[yes, no])
    assert _metrics(log)["overall"] == 0.5
    assert len(_scores(log)[("a1", 1)].metadata["graders"]) == 2


def test_epochs_with_mismatched_missing_grades_reduce_per_key(tmp_path: Path) -> None:
    fish_calls = {"n": 0}

    def judge(prompt: str) -> str:
        if "fish" in prompt:
            fish_calls["n"] += 1
            if fish_calls["n"] == 1:  # only one epoch of "b" is unparseable
                return "garbage"
        return json.dumps({"grades": [{"dimension": d, "meets": "cats" in prompt} for d in _dims_in(prompt)]})

    log = _run(_task("single_call", epochs=3), tmp_path, grader=get_model("scripted/g", memoize=False, responder=judge))
    scores = _scores(log)
    assert {e for (_, e) in scores} == {1, 2, 3}
    for (sid, _), score in scores.items():
        assert set(score.value) >= {"overall", "missing_rate"}  # every epoch has every key
    m = _metrics(log)
    assert m["overall"] == pytest.approx(np.mean([1.0, 0.0, 0.0, 0.0]))
    assert m["missing_rate"] == pytest.approx((1 / 3) / 4)
    b_epochs = sorted(math.isnan(scores[("b", e)].value["overall"]) for e in (1, 2, 3))
    assert b_epochs == [False, False, True]


def test_judge_prompt_keeps_braces_and_rubric_text(tmp_path: Path) -> None:
    seen: list[str] = []

    def judge(prompt: str) -> str:
        seen.append(prompt)
        return "GRADE: NO"

    _run(_task("per_dimension"), tmp_path, grader=get_model("scripted/g", memoize=False, responder=judge))
    assert any("{not a field}" in p and "- mentions {x}" in p for p in seen)


def test_logprobs_requires_per_dimension_mode() -> None:
    with pytest.raises(ValueError, match="per_dimension"):
        rubric_scorer(mode="single_call", logprobs=True)


def test_clustered_se_matches_statsmodels() -> None:
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(12), 3)
    y = rng.normal(size=36) + np.repeat(rng.normal(size=12), 3)
    y[[4, 17]] = np.nan
    keep = ~np.isnan(y)
    fit = sm.OLS(y[keep], np.ones(keep.sum())).fit(cov_type="cluster", cov_kwds={"groups": clusters[keep]})
    mean, se = clustered_mean_se(list(y), list(clusters))
    assert mean == pytest.approx(fit.params[0])
    assert se == pytest.approx(fit.bse[0])
