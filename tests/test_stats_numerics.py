"""caml_evals.stats numerics against scipy, statsmodels and cases worked by hand.

Monte Carlo agreement: scipy draws with its own seed, so both sides carry independent
resampling noise; tolerances are a few times that noise (estimated in each test's comment).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as ss
import statsmodels.api as sm

from caml_evals.stats import (
    adjust_pvalues,
    compare,
    compare_paired_matrix,
    compare_unpaired_matrix,
    summarize,
    summarize_matrix,
)


def _mean_diff(x, y, axis=-1):
    return np.mean(y, axis=axis) - np.mean(x, axis=axis)


# ----------------------------------------------------------------- summarize


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_summarize_matches_scipy_bootstrap(method):
    rng = np.random.default_rng(7)
    x = rng.gamma(2.0, 0.2, size=150)  # skewed, so BCa differs from percentile
    ours = summarize(x, method=method, n_resamples=20_000, seed=1)
    ref = ss.bootstrap(
        (x,),
        np.mean,
        method="BCa" if method == "bca" else "percentile",
        n_resamples=20_000,
        rng=np.random.default_rng(999),
        vectorized=True,
    )
    se = x.std(ddof=1) / math.sqrt(x.size)
    # quantile noise with 20k resamples is ~0.02 se per side (more for BCa): allow 0.15-0.25 se
    tol = (0.15 if method == "percentile" else 0.25) * se
    assert ours.ci_low == pytest.approx(ref.confidence_interval.low, abs=tol)
    assert ours.ci_high == pytest.approx(ref.confidence_interval.high, abs=tol)
    assert ours.mean == pytest.approx(x.mean())
    assert ours.se == pytest.approx(se)  # no clusters: the ordinary standard error
    assert (ours.n, ours.n_clusters, ours.n_missing) == (150, 150, 0)


def test_bca_differs_from_percentile_on_skewed_data():
    x = np.random.default_rng(3).lognormal(0, 1.2, size=60)
    pct = summarize(x, method="percentile", n_resamples=20_000)
    bca = summarize(x, method="bca", n_resamples=20_000)
    assert bca.ci_high > pct.ci_high  # BCa shifts right for right-skewed means


def test_clustered_se_equals_statsmodels_cluster_ols():
    rng = np.random.default_rng(11)
    sizes = rng.integers(1, 7, size=40)  # unequal clusters: epochs x variants per question
    q = np.repeat(np.arange(40), sizes)
    y = rng.normal(0.5, 0.2, size=40)[q] + rng.normal(0, 0.3, size=q.size)
    fit = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": q})
    s = summarize(y, clusters=[f"q{i}" for i in q], n_resamples=2_000)
    assert s.mean == pytest.approx(fit.params[0])
    assert s.se == pytest.approx(fit.bse[0], rel=1e-10)
    assert s.n_clusters == 40
    # the lead's metric helper agrees too
    from caml_evals.scoring.clustered import clustered_mean_se

    assert clustered_mean_se(list(y), list(q))[1] == pytest.approx(s.se)


def test_cluster_bootstrap_equals_question_level_bootstrap_when_balanced():
    # 300 questions x 5 epochs: resampling questions = scipy bootstrap of the question means
    rng = np.random.default_rng(5)
    qmeans = rng.beta(2, 3, size=300)
    y = np.clip(qmeans[:, None] + rng.normal(0, 0.15, size=(300, 5)), 0, 1)
    s = summarize(y.ravel(), clusters=np.repeat(np.arange(300), 5), n_resamples=20_000)
    ref = ss.bootstrap((y.mean(axis=1),), np.mean, n_resamples=20_000, rng=np.random.default_rng(2))
    assert s.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.15 * s.se)
    assert s.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.15 * s.se)
    naive = summarize(y.ravel(), n_resamples=20_000)  # epochs treated as independent
    assert (s.ci_high - s.ci_low) > 1.5 * (naive.ci_high - naive.ci_low)
    # bootstrap CI width ~ the normal CI from the clustered SE
    assert s.ci_high - s.ci_low == pytest.approx(2 * 1.96 * s.se, rel=0.08)


def test_missing_values_are_excluded_and_counted_not_zeroed():
    s = summarize([1.0, None, 1.0, float("nan"), 0.0], n_resamples=500)
    assert s.mean == pytest.approx(2 / 3)
    assert (s.n, s.n_missing) == (3, 2)
    empty = summarize([None, float("nan")], n_resamples=500)
    assert math.isnan(empty.mean) and empty.n == 0 and empty.n_missing == 2


def test_one_cluster_has_mean_but_no_interval():
    s = summarize([0.2, 0.4, 0.6], clusters=["q", "q", "q"], n_resamples=500)
    assert s.mean == pytest.approx(0.4)
    assert math.isnan(s.se) and math.isnan(s.ci_low) and s.n_clusters == 1


def test_equal_cluster_weight_is_mean_of_question_means():
    y = [1.0, 1.0, 1.0, 0.0]
    q = ["a", "a", "a", "b"]
    assert summarize(y, q, n_resamples=200).mean == pytest.approx(0.75)
    assert summarize(y, q, n_resamples=200, cluster_weight="equal").mean == pytest.approx(0.5)


def test_seeded_reproducible_and_batched_equals_single():
    rng = np.random.default_rng(0)
    m = rng.random((120, 3))
    m[rng.random((120, 3)) < 0.2] = np.nan  # each key its own missing pattern
    q = np.repeat(np.arange(40), 3)
    batch = summarize_matrix(m, q, n_resamples=3_000, seed=42)
    for k in range(3):
        single = summarize(m[:, k], q, n_resamples=3_000, seed=42)
        assert single == summarize(m[:, k], q, n_resamples=3_000, seed=42)
        assert single.ci_low == pytest.approx(batch[k].ci_low, rel=1e-12)
        assert single.ci_high == pytest.approx(batch[k].ci_high, rel=1e-12)
    assert summarize(m[:, 0], q, n_resamples=3_000, seed=43).ci_low != batch[0].ci_low


# ----------------------------------------------------------------- paired comparisons


def test_signflip_exact_worked_by_hand():
    # d = 1, 2, 3: sums over the 8 sign patterns are 6, 4, 2, 0, 0, -2, -4, -6; observed 6
    a, b = np.zeros(3), np.array([1.0, 2.0, 3.0])
    two = compare(a, b, n_resamples=10_000)
    assert two.test == "sign-flip exact" and two.exact
    assert two.diff == pytest.approx(2.0)
    assert two.p_value == pytest.approx(2 * 1 / 8)  # only +6 is >= 6; two-sided doubles it
    b2 = np.array([1.0, -2.0, 3.0])  # observed sum 2: 6, 4, 2 are >= 2 -> 3/8; <= 2 -> 6/8
    assert compare(a, b2, alternative="greater").p_value == pytest.approx(3 / 8)
    assert compare(a, b2, alternative="less").p_value == pytest.approx(6 / 8)
    assert compare(a, b2).p_value == pytest.approx(6 / 8)
    ref = ss.permutation_test((b2 - a,), np.mean, permutation_type="samples", vectorized=True)
    assert compare(a, b2).p_value == pytest.approx(ref.pvalue)


def test_signflip_flips_whole_questions():
    # question x: diffs 1, 1 (sum 2); question y: diff 3. Patterns: +-2 +-3 -> 5, 1, -1, -5
    a = np.zeros(3)
    b = np.array([1.0, 1.0, 3.0])
    res = compare(a, b, clusters=["x", "x", "y"], alternative="greater")
    assert res.n_clusters == 2 and res.exact
    assert res.p_value == pytest.approx(1 / 4)
    assert compare(a, b, alternative="greater").p_value == pytest.approx(1 / 8)  # unclustered: 2^3


def test_paired_compare_matches_scipy_monte_carlo():
    rng = np.random.default_rng(21)
    a = rng.normal(0.5, 0.2, size=80)
    b = a + rng.normal(0.04, 0.15, size=80)
    ours = compare(a, b, n_resamples=20_000, seed=3)
    perm = ss.permutation_test(
        (b - a,),
        np.mean,
        permutation_type="samples",
        n_resamples=20_000,
        vectorized=True,
        rng=np.random.default_rng(77),
    )
    boot = ss.bootstrap(
        (a, b),
        _mean_diff,
        paired=True,
        n_resamples=20_000,
        rng=np.random.default_rng(78),
        method="percentile",
    )
    assert ours.test == "sign-flip monte-carlo"
    assert 0.005 < perm.pvalue < 0.5  # a p-value where Monte Carlo noise is visible
    # p noise: sqrt(p(1-p)/20000) <= 0.0035 per side
    assert ours.p_value == pytest.approx(perm.pvalue, abs=0.015)
    assert ours.ci_low == pytest.approx(boot.confidence_interval.low, abs=0.15 * ours.se)
    assert ours.ci_high == pytest.approx(boot.confidence_interval.high, abs=0.15 * ours.se)
    assert ours.diff == pytest.approx(b.mean() - a.mean())
    sd = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    assert ours.effect_size == pytest.approx((b.mean() - a.mean()) / sd)


def test_paired_bca_matches_scipy():
    rng = np.random.default_rng(4)
    a = rng.exponential(0.3, size=70)
    b = a + rng.exponential(0.2, size=70)
    ours = compare(a, b, method="bca", n_resamples=20_000)
    ref = ss.bootstrap(
        (a, b),
        _mean_diff,
        paired=True,
        method="BCa",
        n_resamples=20_000,
        rng=np.random.default_rng(8),
    )
    assert ours.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.25 * ours.se)
    assert ours.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.25 * ours.se)


def test_paired_missing_drops_the_pair_and_counts_each_side():
    a = [0.0, 1.0, None, 0.0, 1.0]
    b = [1.0, float("nan"), 1.0, None, 1.0]
    res = compare(a, b, n_resamples=1_000)
    assert res.n == 2  # pairs 0 and 4 only
    assert (res.n_missing_a, res.n_missing_b) == (1, 2)
    assert res.mean_a == pytest.approx(0.5) and res.mean_b == pytest.approx(1.0)
    assert res.diff == pytest.approx(res.mean_b - res.mean_a)


def test_no_complete_pair_gives_nan_not_zero():
    res = compare([1.0, None], [None, 0.0], n_resamples=100)
    assert res.n == 0 and math.isnan(res.diff) and math.isnan(res.p_value)


def test_paired_matrix_equals_single_key_calls():
    rng = np.random.default_rng(9)
    a = rng.random((90, 4))
    b = a + rng.normal(0.05, 0.2, size=(90, 4))
    a[rng.random((90, 4)) < 0.1] = np.nan
    q = np.repeat(np.arange(30), 3)
    batch = compare_paired_matrix(a, b, q, n_resamples=4_000, seed=5)
    for k in range(4):
        single = compare(a[:, k], b[:, k], clusters=q, n_resamples=4_000, seed=5)
        assert single.p_value == pytest.approx(batch[k].p_value)
        assert single.ci_low == pytest.approx(batch[k].ci_low, rel=1e-12)
        assert single.n_missing_a == batch[k].n_missing_a


def test_clustered_paired_se_is_wider_than_naive_when_questions_drive_the_difference():
    rng = np.random.default_rng(12)
    q = np.repeat(np.arange(50), 4)
    effect = rng.normal(0.0, 0.3, size=50)[q]  # B's gain varies by question, shared by epochs
    a = rng.random(200)
    b = a + effect + rng.normal(0, 0.05, size=200)
    clustered = compare(a, b, clusters=q, n_resamples=5_000)
    naive = compare(a, b, n_resamples=5_000)
    assert clustered.se > 1.6 * naive.se
    assert clustered.ci_high - clustered.ci_low > 1.6 * (naive.ci_high - naive.ci_low)
    assert clustered.n_clusters == 50 and clustered.test == "sign-flip monte-carlo"


# ----------------------------------------------------------------- unpaired comparisons


def test_unpaired_exact_worked_by_hand():
    # a = 0, 1; b = 2, 3: six splits give diffs 2, 1, 0, 0, -1, -2; observed 2
    res = compare([0.0, 1.0], [2.0, 3.0], paired=False)
    assert res.test == "permutation" and res.exact
    assert res.p_value == pytest.approx(2 / 6)
    assert compare(
        [0.0, 1.0], [2.0, 3.0], paired=False, alternative="greater"
    ).p_value == pytest.approx(1 / 6)
    ref = ss.permutation_test(([0.0, 1.0], [2.0, 3.0]), _mean_diff, vectorized=True)
    assert res.p_value == pytest.approx(ref.pvalue)


def test_unpaired_matches_scipy_monte_carlo():
    rng = np.random.default_rng(31)
    a = rng.normal(0.50, 0.2, size=60)
    b = rng.normal(0.53, 0.2, size=45)
    ours = compare(a, b, paired=False, n_resamples=20_000)
    perm = ss.permutation_test(
        (a, b), _mean_diff, n_resamples=20_000, vectorized=True, rng=np.random.default_rng(5)
    )
    boot = ss.bootstrap(
        (a, b), _mean_diff, n_resamples=20_000, rng=np.random.default_rng(6), method="percentile"
    )
    assert 0.005 < perm.pvalue < 0.5
    assert ours.p_value == pytest.approx(perm.pvalue, abs=0.015)
    assert ours.ci_low == pytest.approx(boot.confidence_interval.low, abs=0.15 * ours.se)
    assert ours.ci_high == pytest.approx(boot.confidence_interval.high, abs=0.15 * ours.se)
    assert (ours.n_a, ours.n_b, ours.n) == (60, 45, 105)


def test_unpaired_bca_matches_scipy():
    rng = np.random.default_rng(13)
    a, b = rng.exponential(0.3, size=50), rng.exponential(0.4, size=40)
    ours = compare(a, b, paired=False, method="bca", n_resamples=20_000)
    ref = ss.bootstrap(
        (a, b), _mean_diff, method="BCa", n_resamples=20_000, rng=np.random.default_rng(1)
    )
    assert ours.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.25 * ours.se)
    assert ours.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.25 * ours.se)


def test_unpaired_permutes_whole_questions():
    # A: question p has two values; B: question r one. C(3,1) = 3 arrangements of whole questions
    a, b = [0.0, 0.0, 1.0], [2.0]
    res = compare(a, b, paired=False, clusters=(["p", "p", "q"], ["r"]), alternative="greater")
    assert res.exact and res.n_clusters == 3
    # B = r: 2 - 1/3 = 5/3 (observed); B = p: 0 - 3/2; B = q: 1 - 2/3 = 1/3
    assert res.p_value == pytest.approx(1 / 3)
    m = compare_unpaired_matrix(
        np.array(a), np.array(b), ["p", "p", "q"], ["r"], alternative="greater"
    )
    assert m[0].p_value == res.p_value


def test_unpaired_needs_cluster_arrays_for_each_arm():
    with pytest.raises(ValueError, match="clusters"):
        compare([1.0, 2.0, 3.0], [1.0, 2.0], paired=False, clusters=["a", "b", "c"])
    with pytest.raises(ValueError, match="paired"):
        compare([1.0, 2.0, 3.0], [1.0, 2.0])


# ----------------------------------------------------------------- multiple comparisons


def test_holm_and_bh_worked_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, max(0.04*1, 0.06)=0.06
    assert adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: p*m/rank = 0.02, 0.02, 0.04, 0.04 (already monotone)
    assert adjust_pvalues(p, "fdr_bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_pvalues(p, "none") == pytest.approx(p)


def test_adjustment_leaves_nan_out_of_the_family():
    out = adjust_pvalues([0.01, float("nan"), 0.02], "bonferroni")
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    with pytest.raises(ValueError):
        adjust_pvalues([0.5], "sidak-ish")
    with pytest.raises(ValueError):
        adjust_pvalues([1.5], "holm")


# ----------------------------------------------------------------- seeds and exact caps


def test_default_seed_is_zero_and_none_means_fresh_entropy():
    rng = np.random.default_rng(11)
    x, q = rng.normal(size=120), np.repeat(np.arange(40), 3)
    default = summarize(x, q, n_resamples=300)
    assert default == summarize(x, q, n_resamples=300, seed=0)  # the default is seed 0
    fresh = [summarize(x, q, n_resamples=300, seed=None) for _ in range(2)]
    # continuous data, 300 resamples: two fresh draws giving the same CI ends is impossible
    assert fresh[0].ci_low != fresh[1].ci_low and fresh[0].ci_low != default.ci_low
    assert fresh[0].mean == default.mean and fresh[0].se == default.se  # only resampling varies
    a, b = rng.normal(size=30), rng.normal(size=30)
    c0, c1 = (compare(a, b, n_resamples=200, seed=None) for _ in range(2))
    assert c0.test == "sign-flip monte-carlo" and c0.ci_low != c1.ci_low


def test_automatic_exact_rule_falls_back_to_monte_carlo_above_the_caps(monkeypatch):
    from caml_evals.stats import resampling

    a = np.array([0.1, 0.5, 0.2, 0.9, 0.4, 0.3])
    b = a + np.array([0.2, -0.1, 0.3, 0.1, 0.0, 0.25])
    # 2^6 = 64 sign patterns <= 1,000 resamples: exact under the default cap ...
    assert compare(a, b, n_resamples=1_000).test == "sign-flip exact"
    # ... and C(6, 3) = 20 relabellings: exact too
    un = {"paired": False, "clusters": (np.arange(3), np.arange(3) + 3), "n_resamples": 1_000}
    assert compare(a[:3], b[3:], **un).exact
    monkeypatch.setattr(resampling, "MAX_EXACT_SIGNFLIP_CLUSTERS", 5)
    monkeypatch.setattr(resampling, "MAX_EXACT_ARRANGEMENTS", 10)
    # above the caps the automatic rule samples instead of raising
    paired = compare(a, b, n_resamples=1_000)
    assert paired.test == "sign-flip monte-carlo" and 0 < paired.p_value <= 1
    unpaired = compare(a[:3], b[3:], **un)
    assert not unpaired.exact and unpaired.test == "permutation" and 0 < unpaired.p_value <= 1
    # forcing enumeration above a cap is a clear error
    with pytest.raises(ValueError, match="too large"):
        compare(a, b, n_resamples=1_000, exact=True)
    with pytest.raises(ValueError, match="too large"):
        compare(a[:3], b[3:], **un, exact=True)


def test_resampling_blocks_change_no_draw(monkeypatch):
    """Cache-sized blocks (BOOTSTRAP_CELLS) reshape the work, not the random draws: the
    bootstrap, sign-flip and permutation nulls equal the one-block results to rounding."""
    from caml_evals.stats import resampling

    rng = np.random.default_rng(3)
    sums, counts = rng.normal(size=(700, 3)), rng.integers(1, 6, size=(700, 3)).astype(float)

    def nulls():
        return (
            resampling.bootstrap_ratio(sums, counts, 2_000, np.random.default_rng([0, 1])),
            resampling.signflip_null(
                sums, counts, n_resamples=2_000, rng=np.random.default_rng([0, 2]), exact=False
            )[0],
            resampling.permutation_null(
                sums, counts, 300, n_resamples=2_000, rng=np.random.default_rng([0, 5]), exact=False
            )[0],
        )

    small = nulls()
    monkeypatch.setattr(resampling, "BOOTSTRAP_CELLS", resampling.MAX_CELLS)
    large = nulls()
    for a, b in zip(small, large):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    # permutations of uint8 memberships are the float ones (the draws do not depend on dtype)
    base = np.r_[np.ones(30), np.zeros(70)]
    as_float = np.random.default_rng(9).permuted(np.broadcast_to(base, (50, 100)), axis=1)
    as_byte = np.random.default_rng(9).permuted(
        np.broadcast_to(base.astype(np.uint8), (50, 100)), axis=1
    )
    assert np.array_equal(as_float, as_byte.astype(float))
