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

from caml_evals.scoring.clustered import clustered_mean_se, clustered_ratio_se, jackknife_se
from caml_evals.scoring.dimensions import RubricCriterion, RubricSampleMetadata
from caml_evals.scoring.metrics import rubric_metrics
from caml_evals.scoring.reducers import nan_mean_reducer
from caml_evals.scoring.rubric import rubric_scorer

DIMS = ["Care", "Honesty", "Scope"]


def _sample(sid: str, qid: str, dims: list[str], text: str = "question") -> Sample:
    meta = RubricSampleMetadata(
        question_id=qid,
        dimensions=dims,
        rubric=[
            RubricCriterion(
                name=d,
                guiding_question=f"Does it show {d}? {{not a field}}",
                observable_indicators="- mentions {x}",
            )
            for d in dims
        ],
        language="English",
    )
    return Sample(id=sid, input=text, target="", metadata=meta.model_dump())


SAMPLES = [
    _sample("a1", "a", ["Care", "Honesty"], "q about cats"),
    _sample("a2", "a", ["Care", "Honesty"], "q about dogs"),
    _sample("b", "b", ["Care", "Scope"], "q about fish"),
    _sample("c", "c", ["Honesty"], "q about bees"),
]


def _task(mode: str, epochs: int = 1, graders=None, samples=None, **kw) -> Task:
    return Task(
        dataset=MemoryDataset(samples or SAMPLES),
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
        grades = [
            {"dimension": d, "meets": verdict(d, prompt), "reason": "r"} for d in _dims_in(prompt)
        ]
        return (
            "Here you go:\n```json\n"
            + json.dumps({"grades": [g for g in grades if g["meets"] is not None]})
            + "\n```"
        )

    return respond


def per_dimension(verdict):
    def respond(prompt: str) -> str:
        dim = re.search(r"\[Criterion\]: (\S+)", prompt).group(1)
        return f"Reasoning...\nGRADE: {'YES' if verdict(dim, prompt) else 'NO'}"

    return respond


@pytest.mark.parametrize(
    "mode, make", [("single_call", single_call), ("per_dimension", per_dimension)]
)
def test_all_pass_and_all_fail(tmp_path: Path, mode, make) -> None:
    log = _run(
        _task(mode),
        tmp_path / "pass",
        grader=get_model("scripted/g", memoize=False, responder=make(lambda d, p: True)),
    )
    m = _metrics(log)
    assert m["overall"] == 1.0 and m["missing_rate"] == 0.0
    assert all(m[d] == 1.0 for d in DIMS)
    log = _run(
        _task(mode),
        tmp_path / "fail",
        grader=get_model("scripted/g", memoize=False, responder=make(lambda d, p: False)),
    )
    m = _metrics(log)
    assert m["overall"] == 0.0 and m["missing_rate"] == 0.0
    assert m["dimension_normalised_average"] == 0.0


def test_mixed_grades_give_means_per_dimension_and_normalised_average(tmp_path: Path) -> None:
    # Care passes, Honesty passes only for cats, Scope fails
    verdict = lambda d, p: d == "Care" or (d == "Honesty" and "cats" in p)
    log = _run(
        _task("single_call"),
        tmp_path,
        grader=get_model("scripted/g", memoize=False, responder=single_call(verdict)),
    )
    scores = _scores(log)
    assert scores[("a1", 1)].value == {
        "overall": 1.0,
        "Care": 1.0,
        "Honesty": 1.0,
        "missing_rate": 0.0,
    }
    assert scores[("b", 1)].value == {
        "overall": 0.5,
        "Care": 1.0,
        "Scope": 0.0,
        "missing_rate": 0.0,
    }
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

    log = _run(
        _task("single_call"),
        tmp_path,
        grader=get_model("scripted/g", memoize=False, responder=judge),
    )
    b = _scores(log)[("b", 1)]
    assert math.isnan(b.value["overall"]) and math.isnan(b.value["Care"])
    assert b.value["missing_rate"] == 1.0
    assert all(g["missing"].startswith("unparseable") for g in b.metadata["grades"])
    assert (b.metadata["missing_count"], b.metadata["grades_expected"]) == (2, 2)
    m = _metrics(log)
    assert m["overall"] == 1.0  # the missing sample is excluded, not averaged in as 0
    assert m["Scope"] != m["Scope"]  # NaN: Scope was only tagged on the unparseable sample
    # share of grades: b's 2 of the 7 (a1: 2, a2: 2, b: 2, c: 1), not the mean of sample rates
    assert m["missing_rate"] == pytest.approx(2 / 7)
    expected_se = clustered_ratio_se([0, 0, 2, 0], [2, 2, 2, 1], ["a", "a", "b", "c"])[1]
    assert m["missing_rate_stderr"] == pytest.approx(expected_se) and expected_se > 0


def test_dimension_left_out_of_json_reply_is_missing(tmp_path: Path) -> None:
    verdict = lambda d, p: None if d == "Honesty" else True
    log = _run(
        _task("single_call"),
        tmp_path,
        grader=get_model("scripted/g", memoize=False, responder=single_call(verdict)),
    )
    a1 = _scores(log)[("a1", 1)]
    assert a1.value["Care"] == 1.0 and math.isnan(a1.value["Honesty"])
    assert a1.value["missing_rate"] == 0.5
    reasons = {g["dimension"]: g["missing"] for g in a1.metadata["grades"]}
    assert "no grade for this dimension" in reasons["Honesty"]


def _rate_limited_on_scope(prompt: str):
    if "Scope" in prompt and "[Criterion]: Scope" in prompt:
        return RuntimeError("rate limited for good")
    return "GRADE: YES"


def test_grader_api_error_errors_the_sample_by_default(tmp_path: Path) -> None:
    """A grader failure after Inspect's retries must not quietly change the mean: the sample
    errors (so `inspect eval-retry` redoes it) and the other samples are scored."""
    [log] = eval(
        _task("per_dimension"),
        model=get_model("scripted/model", memoize=False, reply="An answer."),
        model_roles={
            "grader": get_model("scripted/g", memoize=False, responder=_rate_limited_on_scope)
        },
        log_dir=str(tmp_path),
        display="none",
        fail_on_error=False,
    )
    errored = {str(s.id) for s in log.samples if s.error is not None}
    assert errored == {"b"}  # the only sample tagged Scope
    assert "rate limited for good" in next(s for s in log.samples if s.error).error.message
    assert _metrics(log)["overall"] == 1.0  # the rest, unaffected


def test_grader_error_is_recorded_with_reason_when_opted_in(tmp_path: Path) -> None:
    log = _run(
        _task("per_dimension", on_grader_error="missing"),
        tmp_path,
        grader=get_model("scripted/g", memoize=False, responder=_rate_limited_on_scope),
    )
    b = _scores(log)[("b", 1)]
    assert b.value["Care"] == 1.0 and math.isnan(b.value["Scope"])
    missing = [g for g in b.metadata["grades"] if g["missing"]]
    assert len(missing) == 1 and "grader error: RuntimeError: rate limited" in missing[0]["missing"]
    assert _metrics(log)["missing_rate"] == pytest.approx(1 / 7)


def test_several_graders_report_each_and_their_mean(tmp_path: Path) -> None:
    yes = get_model("scripted/yes", memoize=False, responder=single_call(lambda d, p: True))
    no = get_model("scripted/no", memoize=False, responder=single_call(lambda d, p: False))
    log = _run(
        _task("single_call", graders=["grader", "grader2"]), tmp_path, grader=yes, grader2=no
    )
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
        return json.dumps(
            {"grades": [{"dimension": d, "meets": "cats" in prompt} for d in _dims_in(prompt)]}
        )

    log = _run(
        _task("single_call", epochs=3),
        tmp_path,
        grader=get_model("scripted/g", memoize=False, responder=judge),
    )
    scores = _scores(log)
    assert {e for (_, e) in scores} == {1, 2, 3}
    for score in scores.values():
        assert set(score.value) >= {"overall", "missing_rate"}  # every epoch has every key
    m = _metrics(log)
    assert m["overall"] == pytest.approx(np.mean([1.0, 0.0, 0.0, 0.0]))
    assert m["missing_rate"] == pytest.approx(2 / 21)  # b's 2 grades in 1 of 3 epochs, of 7 x 3
    b_epochs = sorted(math.isnan(scores[("b", e)].value["overall"]) for e in (1, 2, 3))
    assert b_epochs == [False, False, True]


def test_judge_prompt_keeps_braces_and_rubric_text(tmp_path: Path) -> None:
    seen: list[str] = []

    def judge(prompt: str) -> str:
        seen.append(prompt)
        return "GRADE: NO"

    _run(
        _task("per_dimension"),
        tmp_path,
        grader=get_model("scripted/g", memoize=False, responder=judge),
    )
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
    fit = sm.OLS(y[keep], np.ones(keep.sum())).fit(
        cov_type="cluster", cov_kwds={"groups": clusters[keep]}
    )
    mean, se = clustered_mean_se(list(y), list(clusters))
    assert mean == pytest.approx(fit.params[0])
    assert se == pytest.approx(fit.bse[0])


def test_clustered_ratio_se_matches_statsmodels_wls() -> None:
    """sum(missing) / sum(expected) is the WLS intercept of the per-sample rate, weights = expected."""
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(10), 2)
    expected = rng.integers(1, 6, size=20).astype(float)
    missing = np.minimum(expected, rng.integers(0, 3, size=20)).astype(float)
    fit = sm.WLS(missing / expected, np.ones(20), weights=expected).fit(
        cov_type="cluster", cov_kwds={"groups": clusters}
    )
    ratio, se = clustered_ratio_se(list(missing), list(expected), list(clusters))
    assert ratio == pytest.approx(missing.sum() / expected.sum()) == pytest.approx(fit.params[0])
    assert se == pytest.approx(fit.bse[0])
    # with every denominator 1 it is the clustered SE of the mean
    assert clustered_ratio_se(list(missing), [1.0] * 20, list(clusters)) == pytest.approx(
        clustered_mean_se(list(missing), list(clusters))
    )


def test_jackknife_uses_the_number_of_finite_estimates() -> None:
    values = {"a": 1.0, "b": 2.0, "c": 4.0, "d": math.nan}
    labels = list(values)

    def statistic(mask: np.ndarray) -> float:
        kept = [label for label, keep in zip(labels, mask) if keep]
        if "d" not in kept:  # undefined without cluster d
            return math.nan
        return float(np.nanmean([values[label] for label in kept]))

    # leaving out "d" gives NaN; the other three leave-one-out estimates are finite
    estimates = np.array([3.0, 2.5, 1.5])
    expected = math.sqrt((3 - 1) / 3 * np.sum((estimates - estimates.mean()) ** 2))
    assert jackknife_se(statistic, labels) == pytest.approx(expected)


EXPANDED = RubricSampleMetadata(
    question_id="e",
    dimensions=["Care", "Honesty"],
    rubric=[
        RubricCriterion(
            name="Care", guiding_question="Care about cats?", variables={"animal": "cat"}
        ),
        RubricCriterion(
            name="Care", guiding_question="Care about dogs?", variables={"animal": "dog"}
        ),
        RubricCriterion(name="Honesty", guiding_question="Honest?"),
    ],
    variables={"animal": ["cat", "dog"]},
)


@pytest.mark.parametrize("mode", ["single_call", "per_dimension"])
def test_expanded_criteria_are_graded_apart_and_averaged_into_their_dimension(
    tmp_path: Path, mode
) -> None:
    prompts: list[str] = []

    def judge(prompt: str) -> str:
        prompts.append(prompt)
        if mode == "per_dimension":
            return "GRADE: " + ("NO" if "dogs" in prompt else "YES")
        listed = re.findall(r"^\d+\. (.+)$", prompt, re.MULTILINE)
        return json.dumps({"grades": [{"dimension": n, "meets": "dog" not in n} for n in listed]})

    sample = Sample(id="e", input="q about pets", target="", metadata=EXPANDED.model_dump())
    log = _run(
        _task(mode, samples=[sample]),
        tmp_path,
        grader=get_model("scripted/g", memoize=False, responder=judge),
    )
    score = _scores(log)[("e", 1)]
    # Care = mean(cat 1, dog 0); overall counts Care once: mean(0.5, 1.0)
    assert score.value == {"overall": 0.75, "Care": 0.5, "Honesty": 1.0, "missing_rate": 0.0}
    grades = score.metadata["grades"]
    assert [(g["criterion"], g["variables"], g["value"]) for g in grades] == [
        ("Care [animal: cat]", {"animal": "cat"}, 1.0),
        ("Care [animal: dog]", {"animal": "dog"}, 0.0),
        ("Honesty", {}, 1.0),
    ]
    assert score.metadata["grades_expected"] == 3
    if mode == "single_call":
        [prompt] = prompts
        listed = re.findall(r"^\d+\. (.+)$", prompt, re.MULTILINE)
        # single_call lists the criteria in a seeded shuffled order, recorded per sample/grade
        assert sorted(listed) == ["Care [animal: cat]", "Care [animal: dog]", "Honesty"]
        assert score.metadata["criteria_listing"] == {"shuffled": listed}
        assert {g["criterion"]: g["position"] for g in grades} == {
            label: listed.index(label) + 1 for label in listed
        }
    else:
        assert len(prompts) == 3
        assert set(score.metadata["judge_prompts"]) == {
            "Care [animal: cat]",
            "Care [animal: dog]",
            "Honesty",
        }
    m = _metrics(log)
    assert m["Care"] == 0.5 and m["dimension_normalised_average"] == 0.75


def test_metadata_without_variables_still_validates() -> None:
    meta = RubricSampleMetadata.model_validate(
        {
            "question_id": "q",
            "dimensions": ["Care"],
            "rubric": [{"name": "Care", "guiding_question": "?"}],
            "variables": {"animal": "carp"},
        }
    )
    assert meta.rubric[0].variables == {} and meta.rubric[0].label == "Care"
    assert meta.variables == {"animal": "carp"}


def test_sample_without_rubric_is_reported_not_counted_as_all_missing(tmp_path: Path) -> None:
    empty = Sample(
        id="n",
        input="q about rocks",
        target="",
        metadata=RubricSampleMetadata(question_id="n", dimensions=[], rubric=[]).model_dump(),
    )
    judge = get_model("scripted/g", memoize=False, responder=single_call(lambda d, p: True))
    log = _run(_task("single_call", samples=[*SAMPLES, empty]), tmp_path, grader=judge)
    n = _scores(log)[("n", 1)]
    assert math.isnan(n.value["overall"]) and math.isnan(n.value["missing_rate"])
    assert n.metadata["grades_expected"] == 0 and "no gradable dimension" in n.explanation
    m = _metrics(log)
    assert m["missing_rate"] == 0.0  # not 1/5: the empty sample expected no grade
    assert m["samples_without_rubric"] == 1


def test_unbound_named_grader_role_is_an_error_not_self_grading(tmp_path: Path) -> None:
    judge = get_model("scripted/g", memoize=False, responder=single_call(lambda d, p: True))
    [log] = eval(
        _task("single_call", graders="grader,grdr2"),
        model=get_model("scripted/model", memoize=False, reply="An answer."),
        model_roles={"grader": judge},
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "error"
    assert "grader role 'grdr2' has no model bound" in log.error.message
    assert "--model-role grdr2=<model>" in log.error.message


def test_unbound_default_grader_role_falls_back_with_one_warning(tmp_path: Path, caplog) -> None:
    caplog.set_level("WARNING", logger="caml_evals.scoring.rubric")
    [log] = eval(
        _task("per_dimension"),
        model=get_model("scripted/model", memoize=False, reply="Reasoning. GRADE: YES"),
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success" and _metrics(log)["overall"] == 1.0  # graded by itself
    warnings = [r for r in caplog.records if "No model bound to role 'grader'" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize("mode", ["single_call", "per_dimension"])
def test_grader_usage_in_metadata_matches_inspect_role_usage(tmp_path: Path, mode) -> None:
    make = single_call if mode == "single_call" else per_dimension
    judge = get_model("scripted/g", memoize=False, responder=make(lambda d, p: True))
    log = _run(_task(mode), tmp_path, grader=judge)
    for sample in log.samples:
        [usage] = sample.scores["rubric_scorer"].metadata["grader_usage"].values()
        n_criteria = len(sample.metadata["rubric"])
        assert usage["calls"] == (1 if mode == "single_call" else n_criteria)
        assert usage["calls"] == sum(
            1 for e in sample.events if e.event == "model" and getattr(e, "role", None) == "grader"
        )
        assert usage["total_tokens"] == sample.role_usage["grader"].total_tokens > 0


@pytest.mark.parametrize(
    "reply, value",
    [
        ("Reasoning.\nGRADE: C", 1.0),
        ("grade: i", 0.0),
        ("GRADE: C earlier, but finally\nGRADE: I", 0.0),  # the last verdict decides
        ("GRADE: Correct.", 1.0),
        ("GRADE: Incorrect", 0.0),
        ("GRADE: P", None),  # not offered by the published instructions
        ("GRADE: CI", None),
        ("downgrade: C", None),
        ("no verdict", None),
    ],
)
def test_published_letter_verdicts_read_as_model_graded_qa(reply: str, value) -> None:
    from caml_evals.scoring.judge_replies import parse_ci_verdict

    parsed = parse_ci_verdict(reply)
    assert parsed.value == value
    assert (parsed.missing is None) == (value is not None)


def test_bad_judging_options_are_task_argument_errors() -> None:
    from caml_evals.errors import TaskArgumentError
    from caml_evals.scoring.rubric_task import resolve_verdict

    assert resolve_verdict("per_dimension", None, False) == "ci"
    assert resolve_verdict("per_dimension", None, True) == "yes_no"
    assert resolve_verdict("per_dimension", None, False, "my_template.txt") == "yes_no"
    assert resolve_verdict("single_call", None, False) == "yes_no"
    with pytest.raises(TaskArgumentError, match="judge_mode"):
        resolve_verdict("both", None, False)
    with pytest.raises(TaskArgumentError, match="verdict"):
        resolve_verdict("per_dimension", "maybe", False)
