"""Judge noise: `judge_repeats=k` grades each answer k times and reports the judge's own variance.

A scripted judge with planted noise (each verdict flipped with probability P on every call,
independently) must show a within-answer variance of P(1-P)/m for m equally weighted criteria
(within the metric's 95% CI), criterion agreement across k calls of (1-P)^k + P^k, and a
variance share near its planted value; a deterministic judge shows none.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from inspect_ai import Epochs, Task, eval
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import get_model
from inspect_ai.solver import generate

from caml_evals.scoring.dimensions import RubricCriterion, RubricSampleMetadata
from caml_evals.scoring.judge_checks import judge_noise_stats
from caml_evals.scoring.metrics import rubric_metrics
from caml_evals.scoring.reducers import nan_mean_reducer
from caml_evals.scoring.rubric import rubric_scorer

DIMS = ["Care", "Honesty", "Scope", "Dignity"]
P = 0.3  # planted: each verdict flips with this probability on every call
K = 3


def _u(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:12], 16) / 16**12


def _samples(n: int) -> list[Sample]:
    meta = RubricSampleMetadata(
        question_id="x",
        dimensions=DIMS,
        rubric=[RubricCriterion(name=d, guiding_question=f"Does it show {d}?") for d in DIMS],
    )
    return [
        Sample(
            id=f"s{i}",
            input=f"question {i}",
            metadata={**meta.model_dump(), "question_id": f"q{i}"},
        )
        for i in range(n)
    ]


def answerer(prompt: str) -> str:
    return "ANS" + re.search(r"question (\d+)", prompt).group(1) + " is my answer"


class NoisyJudge:
    """Truth from (answer, criterion); each call's verdict flipped with probability `p`.

    The n-th call with a given prompt draws hash(prompt, n): repeats are exchangeable, so the
    set of verdicts per answer does not depend on the order Inspect makes the calls in.
    """

    def __init__(self, p: float, per_dimension: bool = False) -> None:
        self.p = p
        self.per_dimension = per_dimension
        self.seen: Counter[str] = Counter()

    def verdict(self, token: str, criterion: str, prompt: str) -> bool:
        n = self.seen[prompt + criterion]
        self.seen[prompt + criterion] += 1
        truth = _u("truth", token, criterion) < 0.5
        return truth != (_u("flip", prompt, criterion, n) < self.p)

    def __call__(self, prompt: str) -> str:
        token = re.search(r"ANS\d+", prompt).group(0)
        if self.per_dimension:
            criterion = next(d for d in DIMS if f"show {d}?" in prompt)
            return "GRADE: " + ("YES" if self.verdict(token, criterion, prompt) else "NO")
        listed = re.findall(r"^\d+\. (.+)$", prompt, re.MULTILINE)
        grades = [{"dimension": d, "meets": self.verdict(token, d, prompt)} for d in listed]
        return json.dumps({"grades": grades})


def _run(tmp_path: Path, judge, n: int, epochs: int = 1, mode: str = "single_call", **kw):
    task = Task(
        dataset=MemoryDataset(_samples(n)),
        solver=generate(),
        scorer=rubric_scorer(mode=mode, criteria_order="fixed", **kw),
        metrics=rubric_metrics(judge_repeats=kw.get("judge_repeats", 1)),
        epochs=Epochs(epochs, nan_mean_reducer()),
    )
    [log] = eval(
        task,
        model=get_model("scripted/answerer", memoize=False, responder=answerer),
        model_roles={"grader": get_model("scripted/judge", memoize=False, responder=judge)},
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    return log


def _metrics(log) -> dict[str, float]:
    return {k: m.value for s in log.results.scores for k, m in s.metrics.items()}


def test_planted_judge_noise_is_recovered(tmp_path: Path) -> None:
    log = _run(tmp_path, NoisyJudge(P), n=60, epochs=2, judge_repeats=K)
    m = _metrics(log)
    expected_var = P * (1 - P) / len(DIMS)
    assert m["judge_variance_ci_low"] <= expected_var <= m["judge_variance_ci_high"], m
    assert m["judge_repeat_agreement"] == pytest.approx((1 - P) ** K + P**K, abs=0.07)
    # between answers: the truth's share of the mean grade, (1 - 2P)^2 Var(Bernoulli(.5)) / m
    between = (1 - 2 * P) ** 2 * 0.25 / len(DIMS)
    assert m["judge_variance_share"] == pytest.approx(
        expected_var / (expected_var + between), abs=0.1
    )
    score = log.samples[0].scores["rubric_scorer"]  # one epoch's score: k calls, one grader
    assert [len(v) for v in score.metadata["judge_repeats"]["overall"]] == [K]
    assert score.metadata["grades_expected"] == K * len(DIMS)
    # the reducer keeps every (epoch x grader) answer's k overalls and sums the agreement
    epochs = [s.scores["rubric_scorer"] for s in log.samples if s.id == "s0"]
    reduced = nan_mean_reducer()(epochs)
    assert [len(v) for v in reduced.metadata["judge_repeats"]["overall"]] == [K, K]
    assert reduced.metadata["judge_repeats"]["compared"] == 2 * len(DIMS)
    assert reduced.metadata["answer"]["answers"] == 2


def test_a_deterministic_judge_has_no_noise(tmp_path: Path) -> None:
    m = _metrics(_run(tmp_path, NoisyJudge(0.0), n=12, judge_repeats=2))
    assert m["judge_variance"] == 0.0
    assert m["judge_repeat_agreement"] == 1.0
    assert m["judge_variance_share"] == 0.0


def test_per_dimension_repeats_make_k_calls_per_criterion(tmp_path: Path) -> None:
    judge = NoisyJudge(P, per_dimension=True)
    log = _run(tmp_path, judge, n=3, mode="per_dimension", judge_repeats=2, verdict="yes_no")
    score = log.samples[0].scores["rubric_scorer"]
    assert score.metadata["grader_usage"]["grader"]["calls"] == 2 * len(DIMS)
    calls = score.metadata["grade_calls"]
    assert sorted(Counter(c["criterion"] for c in calls).values()) == [2] * len(DIMS)
    assert {c["repeat"] for c in calls} == {0, 1}
    # one combined grade per criterion: the mean of its two calls
    for g in score.metadata["grades"]:
        values = [c["value"] for c in calls if c["criterion"] == g["criterion"]]
        assert g["value"] == pytest.approx(sum(values) / 2)
    assert "judge_variance" in _metrics(log)


def test_judge_noise_stats_is_one_way_anova() -> None:
    import numpy as np

    from caml_evals.stats.power import estimate_icc

    answers = [[0.5, 0.75, 0.5], [0.25, 0.25, 0.5], [1.0, 0.75, 1.0], [0.0, 0.25, 0.0]]
    stats = judge_noise_stats(answers, clusters=["a", "a", "b", "c"])
    assert stats["judge_variance"] == pytest.approx(np.mean([np.var(a, ddof=1) for a in answers]))
    flat = [v for a in answers for v in a]
    groups = [i for i, a in enumerate(answers) for _ in a]
    assert stats["judge_variance_share"] == pytest.approx(1 - estimate_icc(flat, groups))
    # an answer graded once carries no information about the judge's noise
    assert np.isnan(judge_noise_stats([[0.5]], ["a"])["judge_variance"])


# The calibration report's per-variant checks (order, repeats, length, with CIs) are tested in
# tests/test_judge_report_checks.py.
