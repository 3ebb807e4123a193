"""Power: minimum detectable difference and questions needed, checked by formula and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as ss

from caml_evals.stats import (
    compare,
    estimate_icc,
    mdd_from_se,
    minimum_detectable_difference,
    power_inputs,
    question_sd,
    questions_needed,
)


def test_mdd_large_n_approaches_the_normal_formula():
    # n = 10,000 questions, one epoch: MDD = (z_.975 + z_.8) * sd / sqrt(n)
    mdd = minimum_detectable_difference(sd=0.3, n_questions=10_000)
    assert mdd == pytest.approx((1.959964 + 0.841621) * 0.3 / 100, rel=1e-3)
    # unpaired arms: variance of a difference of two independent means doubles
    unpaired = minimum_detectable_difference(sd=0.3, n_questions=10_000, paired=False)
    assert unpaired == pytest.approx(mdd * math.sqrt(2), rel=1e-3)


def test_epochs_only_shrink_the_within_question_part():
    base = minimum_detectable_difference(0.3, 100, n_epochs=1, icc=0.6)
    five = minimum_detectable_difference(0.3, 100, n_epochs=5, icc=0.6)
    assert five / base == pytest.approx(math.sqrt(0.6 + 0.4 / 5), rel=1e-9)
    # icc = 1: epochs are copies of each other and buy nothing
    assert minimum_detectable_difference(0.3, 100, n_epochs=50, icc=1.0) == pytest.approx(
        minimum_detectable_difference(0.3, 100, n_epochs=1, icc=1.0)
    )
    assert question_sd(1.0, n_epochs=4, icc=0.0) == pytest.approx(0.5)


def test_questions_needed_inverts_mdd():
    n = questions_needed(0.05, sd=0.3, n_epochs=5, icc=0.6)
    assert minimum_detectable_difference(0.3, n, n_epochs=5, icc=0.6) <= 0.05
    assert minimum_detectable_difference(0.3, n - 1, n_epochs=5, icc=0.6) > 0.05
    assert questions_needed(-0.05, sd=0.3, n_epochs=5, icc=0.6) == n  # direction does not matter
    assert questions_needed(0.05, 0.3, paired=False) > questions_needed(0.05, 0.3)
    with pytest.raises(ValueError):
        questions_needed(0.0, 0.3)
    with pytest.raises(ValueError):
        minimum_detectable_difference(0.3, 100, icc=1.5)


def test_mdd_has_the_promised_power_in_simulation():
    # 40 questions x 3 epochs, icc 0.5: a true difference equal to the MDD is detected ~80%
    rng = np.random.default_rng(0)
    sd, icc, n_q, n_e = 1.0, 0.5, 40, 3
    mdd = minimum_detectable_difference(sd, n_q, n_epochs=n_e, icc=icc)
    sims = 4_000
    between = rng.normal(0, sd * math.sqrt(icc), size=(sims, n_q, 1))
    within = rng.normal(0, sd * math.sqrt(1 - icc), size=(sims, n_q, n_e))
    question_means = (mdd + between + within).mean(axis=2)
    p = ss.ttest_1samp(question_means, 0.0, axis=1).pvalue
    assert (p < 0.05).mean() == pytest.approx(0.8, abs=0.025)  # MC sd ~0.006


def test_mdd_from_se_and_observed_design():
    assert mdd_from_se(0.01) == pytest.approx(0.028016, rel=1e-4)
    assert math.isnan(mdd_from_se(float("nan")))
    rng = np.random.default_rng(2)
    q = np.repeat(np.arange(400), 5)
    y = rng.normal(0, math.sqrt(0.7), 400)[q] + rng.normal(0, math.sqrt(0.3), q.size)
    assert estimate_icc(y, q) == pytest.approx(0.7, abs=0.06)
    inputs = power_inputs(np.where(rng.random(q.size) < 0.1, np.nan, y), q)
    assert inputs.n_questions == 400 and 4.0 < inputs.n_per_question < 5.0
    assert inputs.sd == pytest.approx(1.0, abs=0.06)
    # the SE-based MDD of a real comparison is in the same range as the design formula
    res = compare(np.zeros(q.size), y, clusters=q, n_resamples=2_000)
    design = minimum_detectable_difference(inputs.sd, 400, n_epochs=5, icc=inputs.icc)
    assert mdd_from_se(res.se) == pytest.approx(design, rel=0.15)


def test_mdd_from_se_follows_level_and_alternative():
    z = ss.norm.ppf
    assert mdd_from_se(0.01, alpha=0.1) == pytest.approx((z(0.95) + z(0.8)) * 0.01)
    one_sided = (z(0.95) + z(0.8)) * 0.01
    assert mdd_from_se(0.01, alternative="greater") == pytest.approx(one_sided)
    assert mdd_from_se(0.01, alternative="smaller") == pytest.approx(one_sided)
    assert mdd_from_se(0.01, power=0.9) == pytest.approx((z(0.975) + z(0.9)) * 0.01)
    with pytest.raises(ValueError, match="alternative"):
        mdd_from_se(0.01, alternative="sideways")
    with pytest.raises(ValueError, match="alpha and power"):
        mdd_from_se(0.01, alpha=1.5)


def test_judge_noise_splits_the_within_question_part():
    # sd^2 = 1: icc 0.2 between questions, 0.5 judge noise, 0.3 answer sampling
    one = question_sd(1.0, n_epochs=1, icc=0.2, judge_share=0.5, judge_repeats=1)
    assert one == pytest.approx(1.0)  # one answer judged once: the whole variance
    two = question_sd(1.0, n_epochs=1, icc=0.2, judge_share=0.5, judge_repeats=2)
    assert two**2 == pytest.approx(0.2 + 0.3 + 0.5 / 2)
    # judge_share 0 is the old design effect; repeats then buy nothing
    assert question_sd(1.0, 3, 0.4, judge_share=0.0, judge_repeats=5) == pytest.approx(
        question_sd(1.0, 3, 0.4)
    )
    base = minimum_detectable_difference(0.3, 100, n_epochs=2, icc=0.3, judge_share=0.4)
    more = minimum_detectable_difference(
        0.3, 100, n_epochs=2, icc=0.3, judge_share=0.4, judge_repeats=4
    )
    assert more / base == pytest.approx(
        math.sqrt((0.3 + 0.3 / 2 + 0.4 / 8) / (0.3 + 0.3 / 2 + 0.4 / 2)), rel=1e-9
    )
    n = questions_needed(0.05, 0.3, n_epochs=2, icc=0.3, judge_share=0.4, judge_repeats=4)
    assert n < questions_needed(0.05, 0.3, n_epochs=2, icc=0.3, judge_share=0.4)
    with pytest.raises(ValueError, match="judge_share"):
        question_sd(1.0, icc=0.7, judge_share=0.5)
    with pytest.raises(ValueError, match="judge_repeats"):
        minimum_detectable_difference(0.3, 100, judge_share=0.1, judge_repeats=0)


def test_judge_noise_design_effect_matches_simulation():
    # questions x epochs answers, each judged k times with independent judge noise
    rng = np.random.default_rng(1)
    icc, judge, n_e, k, sims = 0.3, 0.45, 2, 3, 20_000
    q = rng.normal(0, math.sqrt(icc), size=(sims, 1, 1))
    a = rng.normal(0, math.sqrt(1 - icc - judge), size=(sims, n_e, 1))
    j = rng.normal(0, math.sqrt(judge), size=(sims, n_e, k))
    means = (q + a + j).mean(axis=(1, 2))
    expected = question_sd(1.0, n_epochs=n_e, icc=icc, judge_share=judge, judge_repeats=k)
    assert means.std(ddof=1) == pytest.approx(expected, rel=0.03)
