"""The judge as a measured instrument: its settings, order bias, length bias and truncation.

Scripted graders with a planted effect (a judge that favours the criterion listed first, a judge
whose YES rate grows with answer length) run through real Inspect evals; the metrics must recover
the planted effect within their 95% CI and report ~0 when nothing is planted. Pseudo-random
choices are hashes of what the judge is shown, so every run is reproducible.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from inspect_ai import Epochs, Task, eval
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.event import ModelEvent
from inspect_ai.model import ModelOutput, get_model
from inspect_ai.solver import generate

from caml_evals.errors import TaskArgumentError
from caml_evals.scoring.dimensions import RubricCriterion, RubricSampleMetadata
from caml_evals.scoring.judge_checks import length_slope
from caml_evals.scoring.judge_settings import GraderSettings
from caml_evals.scoring.metrics import rubric_metrics
from caml_evals.scoring.reducers import nan_mean_reducer
from caml_evals.scoring.rubric import rubric_scorer
from caml_evals.tasks.human_compassion.task import human_compassion

DIMS = ["Care", "Honesty", "Scope", "Dignity"]
N = 80


def _u(*parts: object) -> float:
    """A uniform number in [0, 1) from what the judge sees (reproducible)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:12], 16) / 16**12


def _samples(n: int = N) -> list[Sample]:
    out = []
    for i in range(n):
        meta = RubricSampleMetadata(
            question_id=f"q{i}",
            dimensions=DIMS,
            rubric=[RubricCriterion(name=d, guiding_question=f"Does it show {d}?") for d in DIMS],
        )
        out.append(Sample(id=f"s{i}", input=f"question {i}", metadata=meta.model_dump()))
    return out


def _answer_words(prompt: str) -> int:
    i = int(re.search(r"question (\d+)", prompt).group(1))
    return 10 + int(290 * _u("length", i))


def answerer(prompt: str) -> str:
    i = re.search(r"question (\d+)", prompt).group(1)
    return f"ANS{i} " + " ".join(["word"] * (_answer_words(prompt) - 1))


def _listed(prompt: str) -> list[str]:
    return re.findall(r"^\d+\. (.+)$", prompt, re.MULTILINE)


def _token(prompt: str) -> str:
    return re.search(r"ANS\d+", prompt).group(0)


def _json(verdicts: dict[str, bool]) -> str:
    return json.dumps({"grades": [{"dimension": d, "meets": v} for d, v in verdicts.items()]})


def truthful(prompt: str) -> str:
    """Verdicts depend on the answer and the criterion only (the hash salt is fixed: a 95% CI
    misses 0 for about one salt in 20, and this one is not such an outlier)."""
    token = _token(prompt)
    return _json({d: _u("t2", token, d) < 0.5 for d in _listed(prompt)})


BOOST = 0.6  # how often the criterion listed first is passed whatever the answer


def primacy_biased(prompt: str) -> str:
    token, listed = _token(prompt), _listed(prompt)
    verdicts = {d: _u("t2", token, d) < 0.5 for d in listed}
    if _u("boost", token, ",".join(listed)) < BOOST:
        verdicts[listed[0]] = True
    return _json(verdicts)


SLOPE = 0.2  # planted: P(YES) rises 0.2 per 100 answer tokens


def length_biased(prompt: str) -> str:
    token = _token(prompt)
    p_yes = 0.1 + SLOPE * _answer_words(f"question {token[3:]}") / 100  # 10..300 words
    return _json({d: _u("len", token, d) < p_yes for d in _listed(prompt)})


def _run(tmp_path: Path, judge, answer=answerer, epochs: int = 1, **kw):
    task = Task(
        dataset=MemoryDataset(_samples()),
        solver=generate(),
        scorer=rubric_scorer(mode="single_call", **kw),
        metrics=rubric_metrics(
            order_effects=kw.get("criteria_order") == "both",
            judge_repeats=kw.get("judge_repeats", 1),
        ),
        epochs=Epochs(epochs, nan_mean_reducer()),
    )
    [log] = eval(
        task,
        model=get_model("scripted/answerer", memoize=False, responder=answer),
        model_roles={"grader": get_model("scripted/judge", memoize=False, responder=judge)},
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    return log


def _metrics(log) -> dict[str, float]:
    return {k: m.value for s in log.results.scores for k, m in s.metrics.items()}


def _covers(m: dict[str, float], name: str, expected: float) -> bool:
    return m[f"{name}_ci_low"] <= expected <= m[f"{name}_ci_high"]


# -- order ------------------------------------------------------------------------------------


def test_planted_primacy_bias_is_recovered_by_both_orders(tmp_path: Path) -> None:
    log = _run(tmp_path, primacy_biased, criteria_order="both")
    m = _metrics(log)
    # Per sample, two of the four criteria are listed first in one of the two orders; each
    # flips with probability P(truth = no) * BOOST = 0.3, the other two never flip.
    expected = 2 * 0.5 * BOOST / len(DIMS)
    assert _covers(m, "order_effect", expected), m
    assert _covers(m, "order_primacy", expected), m
    assert m["order_effect_ci_low"] > 0.05  # clearly not zero
    s = log.samples[0]
    score = s.scores["rubric_scorer"]
    calls = score.metadata["grade_calls"]
    assert {c["order"] for c in calls} == {"shuffled", "reversed"}
    listing = score.metadata["criteria_listing"]
    assert listing["reversed"] == listing["shuffled"][::-1]
    assert sorted(listing["shuffled"]) == sorted(DIMS)
    # one combined grade per criterion for the readers, the calls beside it; 2 calls per answer
    assert len(score.metadata["grades"]) == len(DIMS) and len(calls) == 2 * len(DIMS)
    assert score.metadata["grades_expected"] == 2 * len(DIMS)
    assert score.metadata["grader_usage"]["grader"]["calls"] == 2


def test_no_order_effect_without_a_planted_bias(tmp_path: Path) -> None:
    m = _metrics(_run(tmp_path, truthful, criteria_order="both"))
    assert m["order_effect"] == 0.0 and m["order_primacy"] == 0.0


def test_shuffled_order_is_seeded_per_sample_and_epoch_and_recorded(tmp_path: Path) -> None:
    log = _run(tmp_path, truthful, epochs=2)  # single_call default: shuffled
    listings = {}
    for s in log.samples:
        meta = s.scores["rubric_scorer"].metadata
        assert meta["criteria_order"] == "shuffled"
        [calls] = [meta["criteria_listing"]["shuffled"]]
        listings[(s.id, s.epoch)] = tuple(calls)
        positions = {g["criterion"]: g["position"] for g in meta["grades"]}
        assert positions == {d: calls.index(d) + 1 for d in calls}
    assert len(set(listings.values())) > 10  # orders vary between samples and epochs
    assert any(listings[(f"s{i}", 1)] != listings[(f"s{i}", 2)] for i in range(N))
    again = _run(tmp_path / "again", truthful, epochs=2)
    assert {
        (s.id, s.epoch): tuple(s.scores["rubric_scorer"].metadata["criteria_listing"]["shuffled"])
        for s in again.samples
    } == listings  # the same seed gives the same orders


def test_fixed_order_lists_the_rubric_order(tmp_path: Path) -> None:
    log = _run(tmp_path, truthful, criteria_order="fixed")
    for s in log.samples[:3]:
        assert s.scores["rubric_scorer"].metadata["criteria_listing"] == {"fixed": DIMS}


# -- length and truncation --------------------------------------------------------------------


def test_planted_length_bias_is_recovered_and_absent_when_not_planted(tmp_path: Path) -> None:
    biased = _metrics(_run(tmp_path / "biased", length_biased, criteria_order="fixed"))
    assert _covers(biased, "length_slope", SLOPE), biased
    assert biased["length_slope_ci_low"] > 0
    fair = _metrics(_run(tmp_path / "fair", truthful, criteria_order="fixed"))
    assert _covers(fair, "length_slope", 0.0), fair
    expected_words = sum(_answer_words(f"question {i}") for i in range(N)) / N
    assert fair["mean_answer_tokens"] == pytest.approx(expected_words)  # scripted: words
    assert fair["truncated_share"] == 0.0


def test_truncated_answers_are_counted_per_sample(tmp_path: Path) -> None:
    def cut_some(prompt: str) -> ModelOutput:
        i = int(re.search(r"question (\d+)", prompt).group(1))
        return ModelOutput.from_content(
            "scripted/answerer",
            answerer(prompt),
            stop_reason="max_tokens" if i % 4 == 0 else "stop",
        )

    log = _run(tmp_path, truthful, answer=cut_some, criteria_order="fixed")
    m = _metrics(log)
    assert m["truncated_share"] == pytest.approx(0.25)
    rec = {s.id: s.scores["rubric_scorer"].metadata["answer"] for s in log.samples}
    assert rec["s0"]["stop_reason"] == "max_tokens" and rec["s0"]["truncated"] == 1
    assert rec["s1"]["truncated"] == 0
    assert rec["s1"]["tokens"] == rec["s1"]["words"] == _answer_words("question 1")


def test_length_slope_is_ols_with_clustered_se() -> None:
    import numpy as np
    import statsmodels.api as sm

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 500, 60)
    y = 0.3 + 0.001 * x + rng.normal(0, 0.1, 60)
    clusters = [i // 2 for i in range(60)]
    slope, se = length_slope(y, x, clusters)
    fit = sm.OLS(y, sm.add_constant(x / 100)).fit(
        cov_type="cluster", cov_kwds={"groups": np.array(clusters)}
    )
    assert slope == pytest.approx(fit.params[1]) and se == pytest.approx(fit.bse[1])
    assert np.isnan(length_slope([1.0, 2.0], [3.0, 4.0], [0, 1])[0])  # too few answers


# -- settings ---------------------------------------------------------------------------------


def _grader_configs(log) -> list:
    return [
        e.config
        for s in log.samples
        for e in s.events
        if isinstance(e, ModelEvent) and e.model == "scripted/judge"
    ]


def test_grader_settings_reach_every_grader_call_and_the_log(tmp_path: Path) -> None:
    task = human_compassion(
        grader_temperature=0,
        grader_max_tokens=321,
        grader_seed=7,
        grader_reasoning_effort="low",
        grader_max_retries=2,
        grader_max_connections=3,
        judge_repeats=2,
        criteria_order="both",
    )
    settings = task.metadata["judge_settings"]
    assert settings == {
        "grader_temperature": 0.0,
        "grader_max_tokens": 321,
        "grader_seed": 7,
        "grader_reasoning_effort": "low",
        "grader_max_retries": 2,
        "grader_max_connections": 3,
        "criteria_order": "both",
        "judge_repeats": 2,
    }
    [log] = eval(
        task,
        model=get_model("scripted/answerer", memoize=False, reply="An answer."),
        model_roles={"grader": get_model("scripted/judge", memoize=False, responder=truthful2)},
        log_dir=str(tmp_path),
        display="none",
        limit=2,
    )
    assert log.status == "success", log.error
    assert log.eval.metadata["judge_settings"] == settings
    configs = _grader_configs(log)
    assert len(configs) == 2 * 2 * 2  # samples x orders x repeats
    for c in configs:
        assert (c.temperature, c.max_tokens, c.seed, c.reasoning_effort) == (0, 321, 7, "low")
        assert (c.max_retries, c.max_connections) == (2, 3)
    m = _metrics(log)
    assert {"order_effect", "judge_variance", "judge_repeat_agreement"} <= set(m)


def truthful2(prompt: str) -> str:
    """Verdicts from the criterion label only (for answers without an ANS token)."""
    return _json({d: _u("t", d) < 0.5 for d in _listed(prompt)})


def test_default_settings_leave_the_grader_calls_alone(tmp_path: Path) -> None:
    task = human_compassion(judge_mode="per_dimension")
    assert task.metadata["judge_settings"] == {
        **{name: None for name in GraderSettings.model_fields},
        "criteria_order": "fixed",
        "judge_repeats": 1,
    }
    assert GraderSettings().generate_config().model_dump(exclude_none=True) == {}


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"grader_temperature": -1}, "grader_temperature"),
        ({"grader_max_tokens": 0}, "grader_max_tokens"),
        ({"grader_reasoning_effort": "huge"}, "grader_reasoning_effort"),
        ({"grader_seed": "abc"}, "grader_seed"),
        ({"criteria_order": "random"}, "criteria_order"),
        ({"criteria_order": "both", "judge_mode": "per_dimension"}, "single_call"),
        ({"judge_repeats": 0}, "judge_repeats"),
    ],
)
def test_bad_judge_settings_are_one_clear_line(kwargs, fragment) -> None:
    with pytest.raises(TaskArgumentError, match=fragment) as info:
        human_compassion(**kwargs)
    assert "\n" not in str(info.value)


# -- length-controlled difference between two arms --------------------------------------------


def _length_answerer(longer: bool):
    """Arm A: 45-185 words; arm B: the same answer 40 words shorter to 120 words longer."""

    def answer(prompt: str) -> str:
        i = int(re.search(r"question (\d+)", prompt).group(1))
        n = _answer_words(prompt) // 2 + 40 + (int(160 * _u("extra", i)) - 40 if longer else 0)
        return f"ANS{i} " + " ".join(["word"] * n)

    return answer


def length_only_judge(prompt: str) -> str:
    """Planted: the verdict depends on the answer's length only (no quality difference)."""
    token = _token(prompt)
    n = len(re.search(r"ANS\d+((?: word)*)", prompt).group(1).split())
    p_yes = min(0.1 + SLOPE * n / 100, 0.95)
    return _json({d: _u("lc", token, d) < p_yes for d in _listed(prompt)})


def test_length_controlled_difference_removes_a_pure_length_effect(tmp_path: Path) -> None:
    from caml_evals.stats import score_frame
    from caml_evals.stats.length import answer_frame, length_controlled_frames, length_summary

    log_a = _run(
        tmp_path / "a", length_only_judge, answer=_length_answerer(False), criteria_order="fixed"
    )
    log_b = _run(
        tmp_path / "b", length_only_judge, answer=_length_answerer(True), criteria_order="fixed"
    )
    paths = [log_a.location, log_b.location]
    frames = [score_frame([p]) for p in paths]
    answers = [answer_frame([p]) for p in paths]
    assert len(answers[0]) == N and answers[0]["truncated"].sum() == 0
    sa, sb = length_summary(answers[0]), length_summary(answers[1])
    assert sb.mean_answer_tokens - sa.mean_answer_tokens > 20
    assert sa.truncated_share == 0.0
    [(_task, lc)] = length_controlled_frames(frames[0], frames[1], answers[0], answers[1]).items()
    assert lc.n_questions == N
    assert lc.raw_ci_low > 0  # B looks better only because it is longer
    assert lc.lc_ci_low <= 0.0 <= lc.lc_ci_high, lc
    assert abs(lc.slope_per_100_tokens - SLOPE) < 0.15  # SE ~0.08 in this design
    from caml_evals.stats.length import length_report, render_length

    report = length_report({"A": frames[0], "B": frames[1]}, baseline="A")
    assert report["arms"]["A"]["answers"] == N and report["arms"]["A"]["truncated_share"] == 0
    [row] = report["differences"]
    assert (row["a"], row["b"], row["lc_diff"]) == ("A", "B", lc.lc_diff)
    text = render_length(report)
    assert "length-controlled" in text and "truncated" in text


def test_length_controlled_difference_is_the_intercept_of_the_paired_regression() -> None:
    import numpy as np
    import statsmodels.api as sm

    from caml_evals.stats.length import length_controlled_difference

    rng = np.random.default_rng(3)
    la, lb = rng.uniform(50, 300, 40), rng.uniform(100, 400, 40)
    a = 0.5 + 0.001 * la + rng.normal(0, 0.05, 40)
    b = 0.55 + 0.001 * lb + rng.normal(0, 0.05, 40)
    lc = length_controlled_difference(a, b, la, lb)
    fit = sm.OLS(b - a, sm.add_constant((lb - la) / 100)).fit(cov_type="HC1")
    assert lc.lc_diff == pytest.approx(fit.params[0])
    assert lc.slope_per_100_tokens == pytest.approx(fit.params[1])
    assert lc.raw_diff == pytest.approx(float(np.mean(b - a)))
    assert lc.lc_ci_low < 0.05 < lc.lc_ci_high


def test_answer_record_without_a_generation_is_unknown_not_an_error() -> None:
    from inspect_ai.model import ModelOutput

    from caml_evals.scoring.judge_checks import answer_record

    record = answer_record(ModelOutput(model="x"), "")
    assert record["stop_reason"] == "unknown" and record["truncated"] == 0
    assert record["tokens"] is None and record["words"] == 0
    assert answer_record(None, "two words")["words"] == 2


def test_compare_cli_prints_length_and_the_length_controlled_difference(
    tmp_path: Path, capsys
) -> None:
    import argparse

    from caml_evals.stats.cli import register

    log_a = _run(
        tmp_path / "a", length_only_judge, answer=_length_answerer(False), criteria_order="fixed"
    )
    log_b = _run(
        tmp_path / "b", length_only_judge, answer=_length_answerer(True), criteria_order="fixed"
    )
    parser = argparse.ArgumentParser(prog="caml-evals")
    register(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "cmp"
    args = parser.parse_args(
        [
            "compare",
            log_a.location,
            log_b.location,
            "--by",
            "log",
            "-o",
            str(out),
            "--n-resamples",
            "200",
            "--keys",
            "overall",
        ]
    )
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "answer length and truncation per arm" in printed and "length-controlled" in printed
    data = json.loads((out / "comparison.json").read_text())
    length = data["settings"]["length"]
    assert [a["answers"] for a in length["arms"].values()] == [N, N]
    [row] = length["differences"]
    assert row["raw_ci_low"] > 0 and row["lc_ci_low"] <= 0 <= row["lc_ci_high"]


def test_train_eval_grader_takes_the_judge_settings() -> None:
    from pydantic import ValidationError

    from caml_evals.scoring.judge_settings import GRADER_SETTING_NAMES
    from caml_train.config import GraderSpec

    assert set(GRADER_SETTING_NAMES) <= set(GraderSpec.model_fields)
    spec = GraderSpec(model="scripted/j", grader_temperature=0, grader_seed=3, max_tokens=50)
    c = spec.generate_config()
    assert (c.temperature, c.seed, c.max_tokens) == (0, 3, 50)
    assert GraderSpec(grader_max_tokens=70).generate_config().max_tokens == 70
    assert GraderSpec().generate_config().model_dump(exclude_none=True) == {}
    with pytest.raises(ValidationError, match="grader_temperature"):
        GraderSpec(grader_temperature=-1)
    with pytest.raises(ValidationError, match="disagree"):
        GraderSpec(max_tokens=5, grader_max_tokens=6)
