"""The calibration report's judge checks (`caml_evals.judging.checks`) with their CIs.

One real Inspect eval with four scripted graders, every answer graded in both criteria orders
and twice per order: a `plain` judge (wrong on some items, but the same whatever the order, the
repeat or the length), a `primacy` judge (the criterion listed first is always YES), a `noisy`
judge (each call's verdict flipped with probability P) and a `verbose` judge (YES grows with the
answer's length). It is exported as a real rating set; humans rate the truth. Each planted
effect must lie inside its cluster-bootstrap CI (and the CI must exclude the no-effect value);
where nothing is planted the CI must cover it. The intervals are 99%: this file makes about a
dozen coverage assertions, and at 95% one of them would miss by chance on about every second
draw of the data (the percentile interval's coverage, simulated on this design, is 93% at a
nominal 95%). Pseudo-random choices are hashes of what the judge is shown, so every run is the
same.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import MemoryDataset
from inspect_ai.model import get_model
from inspect_ai.solver import generate
from scipy.stats import spearmanr

from caml_evals.judging.align import align
from caml_evals.judging.checks import (
    CHECKS,
    ItemRecords,
    _question_clusters,
    bootstrap_checks,
    variant_checks,
)
from caml_evals.judging.export import build_rating_set
from caml_evals.judging.schema import HumanRating, KeyEntry, KeySource
from caml_evals.scoring.metrics import rubric_metrics
from caml_evals.scoring.rubric import rubric_scorer

sys.path.insert(0, str(Path(__file__).parent))  # works under any pytest import mode
from test_judge_noise import DIMS, _samples, _u  # one rubric sample set, one hash draw

N = 80  # questions, one answer each: 320 items
P = 0.2  # the noisy judge's flip probability per call
LEVELS = 10  # answer lengths: 5 + 20 * (i % LEVELS) words after the answer's token
GRADERS = ("plain", "primacy", "noisy", "verbose")
RESAMPLES = 400
CI = 0.99


def answerer(prompt: str) -> str:
    i = int(re.search(r"question (\d+)", prompt).group(1))
    return f"ANS{i} " + " ".join(["word"] * (5 + 20 * (i % LEVELS)))


def _truth(token: str, criterion: str) -> bool:
    """Half the items of every answer length meet the rubric (a balanced design: the truth is
    uncorrelated with length in the sample, not only in expectation, so only the planted
    effects and the judges' own random draws move the length correlations). Answers meet one
    or three of their four criteria, so a resample of answers does move the humans' figure."""
    i = int(token[3:])
    return ((i // LEVELS) % 2 == 0) != (DIMS.index(criterion) == 0)


def _length_bias(token: str, criterion: str, words: int, stream: str = "judge") -> bool:
    """YES regardless of the truth with probability words / 200 (up to 0.93)."""
    return _u("len", stream, token, criterion) < words / 200


class Judge:
    """One planted behaviour; the n-th call with a prompt draws hash(prompt, n) for its noise."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.seen: Counter[str] = Counter()

    def __call__(self, prompt: str) -> str:
        token = re.search(r"ANS\d+", prompt).group(0)
        words = len(re.search(r"ANS\d+((?: word)*)", prompt).group(1).split())
        listed = re.findall(r"^\d+\. (.+)$", prompt, re.MULTILINE)
        call = self.seen[prompt]
        self.seen[prompt] += 1
        grades = []
        for position, d in enumerate(listed):
            verdict = _truth(token, d)
            if self.kind == "plain" and _u("wrong", token, d) < 0.2:
                verdict = not verdict  # wrong, but the same in every call
            elif self.kind == "primacy" and position == 0:
                verdict = True
            elif self.kind == "noisy" and _u("flip", prompt, d, call) < P:
                verdict = not verdict
            elif self.kind == "verbose":
                verdict = verdict or _length_bias(token, d, words)
            grades.append({"dimension": d, "meets": verdict})
        return json.dumps({"grades": grades})


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """The eval's rating key (all four graders are variants of one judging)."""
    tmp = tmp_path_factory.mktemp("checks")
    task = Task(
        dataset=MemoryDataset(_samples(N)),
        solver=generate(),
        scorer=rubric_scorer(
            graders=list(GRADERS), mode="single_call", criteria_order="both", judge_repeats=2
        ),
        metrics=rubric_metrics(order_effects=True, judge_repeats=2),
    )
    [log] = eval(
        task,
        model=get_model("scripted/answerer", memoize=False, responder=answerer),
        model_roles={
            g: get_model(f"scripted/{g}", memoize=False, responder=Judge(g)) for g in GRADERS
        },
        log_dir=str(tmp),
        display="none",
    )
    assert log.status == "success", log.error
    _, key, _ = build_rating_set([(log.location, log)], seed=1)
    return key, tmp


def _ratings(key, biased: bool = False) -> list[HumanRating]:
    """Two raters who rate the truth; `biased`: who also say YES more often on long answers,
    as much as the verbose judge does (their own draws)."""
    out = []
    for item_id, entry in key.items.items():
        i = int(str(entry.sample_id)[1:])
        token, words = f"ANS{i}", 5 + 20 * (i % LEVELS)
        value = _truth(token, entry.criterion)
        if biased:
            value = value or _length_bias(token, entry.criterion, words, stream="people")
        out += [HumanRating(item_id=item_id, rater=r, value=float(value)) for r in "ab"]
    return out


def _checks(key, ratings) -> dict[str, dict]:
    data = align(key, ratings)
    out = variant_checks(data, key, n_resamples=RESAMPLES, seed=3, ci=CI)
    graders = {name.split("/")[-1].split("=")[0]: c for name, c in out.items()}
    assert set(GRADERS) <= set(graders), out.keys()
    return graders


def _covers(cell: dict, value: float) -> bool:
    return cell["lo"] - 1e-12 <= value <= cell["hi"] + 1e-12


def _population_length_corr(n: int = 400_000) -> float:
    """Spearman of the verbose judge's grade with length over the planted process itself
    (equally many answers of each length; truth and bias independent draws)."""
    rng = np.random.default_rng(0)
    level = rng.integers(0, LEVELS, n)
    words = 5 + 20 * level
    grade = (rng.random(n) < 0.5) | (rng.random(n) < words / 200)
    return float(spearmanr(grade, words).statistic)


def test_planted_order_bias_is_recovered_within_its_ci(judged) -> None:
    key, _ = judged
    c = _checks(key, _ratings(key))
    # two of four criteria are listed first in one of the two orders; they differ from the
    # other order's grade when the truth is no: 2 * 0.5 / 4
    assert _covers(c["primacy"]["order_effect"], 0.25), c["primacy"]["order_effect"]
    assert c["primacy"]["order_effect"]["lo"] > 0.1
    assert c["primacy"]["order_items"] == 2 * N * len(DIMS)  # one pair per repeat
    # nothing planted: exactly 0 (every pair equal), and the CI is 0 too
    for g in ("plain", "verbose"):
        assert c[g]["order_effect"] == {"value": 0.0, "lo": 0.0, "hi": 0.0, "undefined_share": 0.0}


def test_planted_noise_is_recovered_within_its_ci(judged) -> None:
    key, _ = judged
    c = _checks(key, _ratings(key))
    # per item two groups (one per order) of two calls, each call flipped independently
    agreement = ((1 - P) ** 2 + P**2) ** 2
    assert _covers(c["noisy"]["repeat_agreement"], agreement), c["noisy"]["repeat_agreement"]
    assert c["noisy"]["repeat_agreement"]["hi"] < 0.8
    # noise alone also makes the two orders disagree: 2P(1-P); read both checks together
    assert _covers(c["noisy"]["order_effect"], 2 * P * (1 - P)), c["noisy"]["order_effect"]
    for g in ("plain", "primacy", "verbose"):  # deterministic judges agree with themselves
        assert c[g]["repeat_agreement"]["value"] == 1.0 and c[g]["repeat_agreement"]["lo"] == 1.0
        assert c[g]["repeat_items"] == N * len(DIMS)


def test_planted_length_bias_is_recovered_and_absent_where_not_planted(judged) -> None:
    key, _ = judged
    c = _checks(key, _ratings(key))
    expected = _population_length_corr()
    assert expected > 0.3  # the planted effect is large enough to matter
    v = c["verbose"]
    assert _covers(v["length_corr_judge"], expected), v["length_corr_judge"]
    assert _covers(v["length_corr_human"], 0.0), v["length_corr_human"]  # humans rate the truth
    assert _covers(v["length_corr_diff"], expected), v["length_corr_diff"]
    assert v["length_corr_diff"]["lo"] > 0.1  # the judge is more length-biased than people
    assert v["length_items"] == N * len(DIMS) and v["length_unit"] == "tokens"
    assert v["n_clusters"] == N
    for g in ("plain", "primacy"):  # no length in these judges: the CI covers 0
        assert _covers(c[g]["length_corr_diff"], 0.0), (g, c[g]["length_corr_diff"])
    # the noisy judge's figure is one draw of its per-call noise (here -0.10, just outside its
    # 99% CI: the flips happen to be a little more frequent on long answers); ~0 all the same.
    # How often such a draw leaves the interval is what the coverage test below measures.
    assert abs(c["noisy"]["length_corr_diff"]["value"]) < 0.15


def test_length_bias_people_share_is_not_the_judges_fault(judged) -> None:
    """Humans with the same planted length preference: the judge correlates with length, but
    no more than the humans do, so the difference's CI covers 0."""
    key, _ = judged
    v = _checks(key, _ratings(key, biased=True))["verbose"]
    assert v["length_corr_judge"]["lo"] > 0.1
    assert v["length_corr_human"]["lo"] > 0.1
    assert _covers(v["length_corr_diff"], 0.0), v["length_corr_diff"]


def test_difference_is_paired_on_the_same_resamples(judged) -> None:
    """Humans who rate exactly what the verbose judge said: both correlations vary over the
    resamples, their difference is 0 in every one (unpaired intervals would not be)."""
    key, _ = judged
    data = align(key, _ratings(key))
    [name] = [n for n in data.variants if n.endswith("verbose=scripted/verbose")]
    values = data.variants[name].values
    ratings = [
        HumanRating(item_id=item_id, rater=r, value=float(values[j]))
        for j, item_id in enumerate(data.item_ids)
        for r in "ab"
    ]
    v = variant_checks(align(key, ratings), key, n_resamples=200, seed=0)[name]
    assert v["length_corr_judge"]["hi"] - v["length_corr_judge"]["lo"] > 0.05
    assert v["length_corr_diff"]["value"] == 0.0
    assert v["length_corr_diff"]["lo"] == v["length_corr_diff"]["hi"] == 0.0


def test_checks_are_reproducible_and_ensembles_get_the_length_checks(judged) -> None:
    from caml_evals.judging.align import add_ensemble

    key, _ = judged
    ratings = _ratings(key)
    data = align(key, ratings)
    assert variant_checks(data, key, n_resamples=50, seed=7) == variant_checks(
        data, key, n_resamples=50, seed=7
    )
    ensembles = [n for n, v in data.variants.items() if v.kind != "grader"]
    assert ensembles  # four graders of one judging: its majority and mean
    checks = variant_checks(data, key, n_resamples=50)
    for name in ensembles:
        assert checks[name]["order_effect"] is None and checks[name]["repeat_agreement"] is None
        assert checks[name]["length_corr_diff"]["value"] is not None
    add_ensemble(data.variants, "mine", list(data.variants)[:2], "mean")
    assert variant_checks(data, key, n_resamples=10)["mine"]["length_items"] > 0


def test_questions_are_the_clusters() -> None:
    """Two epochs of one question (and two models' answers to it) are one cluster."""
    source = KeySource(label="t", log="x.eval", task="t", model="m", scorer="s", grades={})
    entries = [
        KeyEntry(
            item_id=f"i{j}",
            unit_id=f"u{j}",
            sample_id=sid,
            epoch=epoch,
            dimension="Care",
            content_hash=f"h{j}",
            sources=[source],
        )
        for j, (sid, epoch) in enumerate([("a", 1), ("a", 2), ("b", 1), ("a", 1)])
    ]
    assert _question_clusters(entries).tolist() == [0, 0, 1, 0]


def test_report_shows_every_check_with_its_ci(judged, capsys) -> None:
    """Through the CLI, from files: agreement.json, the HTML table and the console table."""
    from caml_evals.judging.cli import main as judge_main
    from caml_evals.judging.ratings_io import write_ratings

    key, tmp = judged
    key_path = tmp / "key.json"
    key_path.write_text(key.model_dump_json())
    write_ratings(tmp / "ratings.jsonl", _ratings(key))
    out = tmp / "rep"
    args = ["report", "--key", str(key_path), "--ratings", str(tmp / "ratings.jsonl")]
    assert judge_main([*args, "--out", str(out), "--resamples", "100", "--seed", "3"]) == 0
    rep = json.loads((out / "agreement.json").read_text())
    [primacy] = [c for n, c in rep["judge_checks"].items() if "primacy=" in n]
    assert set(CHECKS) <= set(primacy)
    assert primacy["order_effect"]["lo"] <= primacy["order_effect"]["value"]
    assert primacy["order_effect"]["value"] <= primacy["order_effect"]["hi"]
    html = (out / "agreement.html").read_text()
    assert "What the judge can get wrong" in html and "percentile bootstrap over" in html
    value = primacy["order_effect"]
    assert f"{value['value']:.3f} [{value['lo']:.3f}, {value['hi']:.3f}]" in html
    printed = capsys.readouterr().out
    assert "what the judge can get wrong" in printed and "length_corr_diff" in printed
    [row] = [line for line in printed.splitlines() if line.startswith("order_effect\t")]
    assert f"{value['value']:.3f} [{value['lo']:.2f}, {value['hi']:.2f}]" in row
    assert "not measured" in row  # the ensembles: order belongs to one grader's calls
    # each variant's judge as its log records it (this bare Task has no judge_settings
    # metadata, which the benchmark tasks write: the grader models only), in all three forms
    assert primacy["judge"]["graders"] == {g: f"scripted/{g}" for g in GRADERS}
    assert "primacy=scripted/primacy" in html
    [judge_row] = [line for line in printed.splitlines() if line.startswith("judge\t")]
    assert "primacy=scripted/primacy" in judge_row


def test_intervals_cover_as_often_as_they_claim() -> None:
    """Coverage of the checks' 95% intervals over simulated calibration sets (80 questions of 4
    criteria, lengths in 10 levels): a noisy judge (each of 2 orders x 2 repeats flipped with
    probability P) with a planted primacy bias and no length bias; humans rate the truth. Each
    interval must contain the true value about 95% of the time: one too narrow (items resampled
    as if independent of their answer: 72-88% here) or off-centre would not."""
    rng = np.random.default_rng(5)
    n_q, n_d = 80, 4
    q = np.repeat(np.arange(n_q), n_d)
    lengths = (5 + 20 * (q % LEVELS)).astype(float)
    a = (1 - P) ** 2 + P**2  # two calls of one order agree
    # half the items are listed first in one of the orders: that order says YES twice, the
    # other is a fair coin (truth 50/50, flipped or not); the other half: two noisy calls
    truth_value = {
        "order_effect": 0.5 * 0.5 + 0.5 * 2 * P * (1 - P),
        "repeat_agreement": 0.5 * a + 0.5 * a * a,
        "length_corr_diff": 0.0,
        "length_corr_human": 0.0,
    }
    hits: Counter[str] = Counter()
    runs = 120
    for run in range(runs):
        # an answer's criteria go together (70%: the answer's own coin), and one judge call
        # grades them all (a bad call, probability P, flips all of them): items of one answer
        # are correlated, as in single-call judging, so resampling items would be too narrow
        own = rng.random(n_q)[q] < 0.5
        truth = np.where(rng.random(q.size) < 0.7, own, rng.random(q.size) < 0.5).astype(float)
        position = rng.permuted(np.tile(np.arange(n_d), (n_q, 1)), axis=1).ravel()
        bad_call = (rng.random((4, n_q)) < P)[:, q]  # shuffled x2, reversed x2
        calls = np.where(bad_call, 1 - truth, truth)
        calls[:2, position == 0] = 1.0  # first in the shuffled order
        calls[2:, position == n_d - 1] = 1.0  # first in the reversed order
        shuffled, reverse = calls[:2], calls[2:]
        record = ItemRecords(
            judge=calls.mean(axis=0),
            human=truth,
            order_sum=np.abs(shuffled - reverse).sum(axis=0),
            order_pairs=np.full(q.size, 2.0),
            agree=((shuffled[0] == shuffled[1]) & (reverse[0] == reverse[1])).astype(float),
            repeated=np.ones(q.size),
        )
        [cells] = bootstrap_checks({"j": record}, lengths, q, n_resamples=200, seed=run).values()
        for check, value in truth_value.items():
            hits[check] += _covers(cells[check], value)
        hits["order_seen"] += cells["order_effect"]["lo"] > 0.2
    for check in truth_value:
        assert 0.88 <= hits[check] / runs <= 0.995, (check, hits)
    assert hits["order_seen"] == runs  # the planted effect is always told apart from 0


def test_a_log_gone_since_the_export_leaves_its_checks_unmeasured(judged) -> None:
    """Not 0, not a failed report: None, with the log listed."""
    key, tmp = judged
    moved = key.model_copy(deep=True)
    for entry in moved.items.values():
        for source in entry.sources:
            source.log = str(tmp / "gone.eval")
    checks = variant_checks(align(moved, _ratings(moved)), moved, n_resamples=20)
    for c in checks.values():
        assert all(c[m] is None for m in CHECKS), c
        assert c["length_items"] == 0
    graders = [c for n, c in checks.items() if "=scripted/" in n]
    assert graders and all(c["unreadable_logs"] == [str(tmp / "gone.eval")] for c in graders)
