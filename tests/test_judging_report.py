"""The agreement report: numbers cross-checked with the reference libraries on aligned data,
judge variants ranked as simulated, edge cases, and the HTML/JSON/CLI output."""

from __future__ import annotations

import json

import krippendorff
import numpy as np
import pytest
import scipy.stats as st
from statsmodels.stats.inter_rater import cohens_kappa

from caml_evals.judging.align import AlignError, Variant, align, majority_codes
from caml_evals.judging.analysis import analyse
from caml_evals.judging.cli import main as judge_main
from caml_evals.judging.ratings_io import write_ratings
from caml_evals.judging.report import render_html
from caml_evals.judging.schema import HumanRating
from caml_evals.judging.simulate import simulate


def _table(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    t = np.zeros((k, k))
    np.add.at(t, (a, b), 1)
    return t


def ref_pairwise(
    rows: list[np.ndarray], pairs: list[tuple[int, int]], k: int
) -> tuple[float, float]:
    """Reference pairwise figures: statsmodels' Cohen's kappa of each pair on its shared items,
    averaged with the shared items as weights, and the pooled share of agreeing pairs."""
    kappas, weights, agree = [], [], 0.0
    for a, b in pairs:
        both = (rows[a] >= 0) & (rows[b] >= 0)
        if not both.any():
            continue
        table = _table(rows[a][both], rows[b][both], k)
        kappas.append(cohens_kappa(table).kappa)
        weights.append(both.sum())
        agree += np.trace(table)
    return float(np.average(kappas, weights=weights)), agree / sum(weights)


@pytest.fixture(scope="module")
def sim():
    key, ratings = simulate(
        n_answers=120,
        n_dimensions=3,
        n_raters=4,
        human_error=0.1,
        rate_share=0.8,
        judge_errors={"good": 0.08, "poor": 0.35, "good_logprob": 0.08},
        seed=11,
    )
    return key, ratings


@pytest.fixture(scope="module")
def report(sim):
    key, ratings = sim
    return analyse(align(key, ratings), n_resamples=300, seed=1)


def test_point_estimates_match_reference_libraries(sim, report):
    key, ratings = sim
    data = align(key, ratings)
    overall = report["scopes"]["overall"]
    ceiling = overall["ceiling"]["metrics"]
    for level in ("nominal", "ordinal", "interval"):
        ref = krippendorff.alpha(data.rater_values, level_of_measurement=level)
        assert ceiling[f"alpha_{level}"]["value"] == pytest.approx(ref, abs=1e-6)
    humans = [data.snap(row) for row in data.rater_values]
    R = len(humans)
    kappa_h, agree_h = ref_pairwise(humans, [(a, b) for a in range(R) for b in range(a + 1, R)], 2)
    assert ceiling["pairwise_kappa"]["value"] == pytest.approx(kappa_h, abs=1e-6)
    assert ceiling["pairwise_agreement"]["value"] == pytest.approx(agree_h, abs=1e-6)
    for name in ("sim/good", "sim/good_logprob"):
        v = data.variants[name].values
        m = overall["variants"][name]["metrics"]
        snapped = data.scale[data.snap(v)]
        with_judge = np.vstack([data.rater_values, snapped])
        for level in ("nominal", "ordinal"):
            assert m[f"alpha_{level}"]["value"] == pytest.approx(
                krippendorff.alpha(with_judge, level_of_measurement=level), abs=1e-6
            )
        kappa_j, agree_j = ref_pairwise(humans + [data.snap(v)], [(r, R) for r in range(R)], 2)
        assert m["pairwise_kappa"]["value"] == pytest.approx(kappa_j, abs=1e-6)
        assert m["pairwise_agreement"]["value"] == pytest.approx(agree_j, abs=1e-6)
        raw = np.vstack([data.rater_values, v])
        assert m["alpha_interval"]["value"] == pytest.approx(
            krippendorff.alpha(raw, level_of_measurement="interval"), abs=1e-6
        )
        maj = majority_codes(data.counts)
        ok = maj >= 0
        table = np.zeros((2, 2))
        np.add.at(table, (maj[ok], data.snap(v)[ok]), 1)
        assert m["kappa"]["value"] == pytest.approx(cohens_kappa(table).kappa, abs=1e-6)
        assert m["weighted_kappa"]["value"] == pytest.approx(
            cohens_kappa(table, wt="quadratic").kappa, abs=1e-6
        )
        assert overall["variants"][name]["confusion"] == table.astype(int).tolist()
        hmean = np.nanmean(data.rater_values, axis=0)
        assert m["spearman"]["value"] == pytest.approx(st.spearmanr(v, hmean).statistic, abs=1e-6)
        assert m["kendall"]["value"] == pytest.approx(st.kendalltau(v, hmean).statistic, abs=1e-6)
        assert m["bias"]["value"] == pytest.approx(np.mean(v - hmean), abs=1e-6)
        assert m["mse"]["value"] == pytest.approx(np.mean((v - hmean) ** 2), abs=1e-6)


def test_three_point_scale_weighted_kappa_and_ordinal_alpha_match_references(sim):
    """Ratings on a finer scale (0, 0.5, 1): weighted kappa and ordinal alpha with the judge
    differ from their nominal versions and still equal statsmodels / krippendorff."""
    key, ratings = sim
    rng = np.random.default_rng(3)
    finer = [r.model_copy(update={"value": 0.5}) if rng.random() < 0.25 else r for r in ratings]
    data = align(key, finer)
    assert data.scale.tolist() == [0.0, 0.5, 1.0]
    report = analyse(data, n_resamples=0)
    overall = report["scopes"]["overall"]
    maj = majority_codes(data.counts)
    humans = [data.snap(row) for row in data.rater_values]
    R = len(humans)
    for name in ("sim/good_logprob", "sim/mean"):
        v = data.variants[name].values
        code = data.snap(v)
        m = overall["variants"][name]["metrics"]
        ok = (maj >= 0) & (code >= 0)
        table = _table(maj[ok], code[ok], 3)
        assert overall["variants"][name]["confusion"] == table.astype(int).tolist()
        assert m["kappa"]["value"] == pytest.approx(cohens_kappa(table).kappa, abs=1e-6)
        wk = cohens_kappa(table, wt="quadratic").kappa
        assert m["weighted_kappa"]["value"] == pytest.approx(wk, abs=1e-6)
        assert abs(wk - m["kappa"]["value"]) > 1e-3
        with_judge = np.vstack([data.rater_values, data.scale[code]])
        for level in ("nominal", "ordinal"):
            ref = krippendorff.alpha(
                with_judge, level_of_measurement=level, value_domain=data.scale
            )
            assert m[f"alpha_{level}"]["value"] == pytest.approx(ref, abs=1e-6)
        raw = np.vstack([data.rater_values, v])  # interval alpha: the raw judge value
        assert m["alpha_interval"]["value"] == pytest.approx(
            krippendorff.alpha(raw, level_of_measurement="interval"), abs=1e-6
        )
        kappa_j, _ = ref_pairwise(humans + [code], [(r, R) for r in range(R)], 3)
        assert m["pairwise_kappa"]["value"] == pytest.approx(kappa_j, abs=1e-6)


def test_lenient_judge_is_scored_like_one_more_human():
    """Ceiling and judge use the same pairwise statistic. A lenient rater D scored as the judge
    gets exactly the figure its pairs contribute when D is counted as a fourth human: the
    4-human ceiling is the shared-items-weighted mix of the 3-human ceiling and D's figure.
    (With the old pooled definitions -- Cohen's kappa for the judge, Scott's pi / Fleiss for the
    humans -- the lenient rater got a bonus from a different chance correction.)"""
    key, ratings = simulate(
        n_answers=150,
        n_dimensions=2,
        n_raters=4,
        human_error=0.15,
        rate_share=0.85,
        base_rate=0.3,
        judge_errors={"j": 0.1},
        seed=5,
    )
    rng = np.random.default_rng(6)
    lenient = [
        r.model_copy(update={"value": 1.0})
        if r.rater == "rater3" and r.value == 0.0 and rng.random() < 0.5
        else r
        for r in ratings
    ]
    everyone = align(key, lenient)
    three = align(key, [r for r in lenient if r.rater != "rater3"])
    d_values = everyone.rater_values[everyone.raters.index("rater3")]
    d_values = d_values[[everyone.item_ids.index(i) for i in three.item_ids]]
    three.variants = {"D": Variant(name="D", values=d_values, source="x", grader="rater3")}
    four = analyse(everyone, n_resamples=0)["scopes"]["overall"]["ceiling"]["metrics"]
    rep = analyse(three, n_resamples=0)["scopes"]["overall"]
    c3 = rep["ceiling"]["metrics"]
    d = rep["variants"]["D"]["metrics"]
    rated = ~np.isnan(everyone.rater_values)
    shared = rated.astype(int) @ rated.T.astype(int)
    n_h = sum(shared[a, b] for a in range(3) for b in range(a + 1, 3))
    n_d = sum(shared[a, 3] for a in range(3))
    for metric in ("pairwise_kappa", "pairwise_agreement"):
        mixed = (n_h * c3[metric]["value"] + n_d * d[metric]["value"]) / (n_h + n_d)
        assert four[metric]["value"] == pytest.approx(mixed, abs=1e-5)
    # D is lenient: a clearly higher yes-rate than the others, and the apples-to-apples figure
    # puts it below the human ceiling
    assert np.nanmean(d_values) > np.nanmean(three.rater_values) + 0.1
    assert d["pairwise_kappa"]["value"] < c3["pairwise_kappa"]["value"]


def test_variants_ranked_and_cis_sane(report):
    overall = report["scopes"]["overall"]["variants"]
    good, poor = overall["sim/good"]["metrics"], overall["sim/poor"]["metrics"]
    assert good["kappa"]["lo"] > poor["kappa"]["hi"]
    for scope in report["scopes"].values():
        for v in scope["variants"].values():
            for cell in v["metrics"].values():
                if cell["value"] is not None and cell["lo"] is not None:
                    assert cell["lo"] - 1e-9 <= cell["hi"]
    # the good judge rates about like one more human: pairwise kappa near the human ceiling
    human = report["scopes"]["overall"]["ceiling"]["metrics"]["pairwise_kappa"]["value"]
    assert abs(good["pairwise_kappa"]["value"] - human) < 0.15
    assert {"sim/majority", "sim/mean"} <= set(overall)
    assert report["data"]["dimensions"] == ["dim00", "dim01", "dim02"]
    assert set(report["scopes"]) == {"overall", "dim00", "dim01", "dim02"}


def test_reproducible_with_seed(sim, report):
    key, ratings = sim
    again = analyse(align(key, ratings), n_resamples=300, seed=1)
    assert again == report


def test_align_errors_and_unsure(sim):
    key, ratings = sim
    with pytest.raises(AlignError, match="not in the key"):
        align(key, ratings + [HumanRating(item_id="zzz", rater="x", value=1)])
    with pytest.raises(AlignError, match="duplicate"):
        align(key, ratings + [ratings[0]])
    unsure = [
        r.model_copy(update={"unsure": True}) if i % 10 == 0 else r for i, r in enumerate(ratings)
    ]
    kept = align(key, unsure)
    dropped = align(key, unsure, drop_unsure=True)
    assert kept.notes["ratings_used"] == len(ratings)
    assert dropped.notes["ratings_dropped_unsure"] == len(ratings[::10])
    assert (~np.isnan(dropped.rater_values)).sum() == len(ratings) - len(ratings[::10])


def test_everyone_agrees_and_judge_constant_gives_undefined_not_crash(sim):
    key, _ = sim
    items = list(key.items)[:30]
    ratings = [HumanRating(item_id=i, rater=r, value=1.0) for i in items for r in ("a", "b")]
    report = analyse(align(key, ratings), n_resamples=50)
    ceiling = report["scopes"]["overall"]["ceiling"]["metrics"]
    assert ceiling["pairwise_agreement"]["value"] == 1.0
    assert ceiling["pairwise_kappa"]["value"] is None and ceiling["alpha_nominal"]["value"] is None
    assert ceiling["alpha_nominal"]["undefined_share"] == 1.0
    html = render_html(report)
    assert "undefined" in html


def test_cli_report_with_ratings_file_and_ensemble(sim, tmp_path):
    key, ratings = sim
    key_path = tmp_path / "key.json"
    key_path.write_text(key.model_dump_json())
    ratings_path = tmp_path / "ratings.jsonl"
    write_ratings(ratings_path, ratings)
    out = tmp_path / "rep"
    code = judge_main(
        [
            "report",
            "--key",
            str(key_path),
            "--ratings",
            str(ratings_path),
            "--out",
            str(out),
            "--resamples",
            "50",
            "--ensemble",
            "pair=majority:sim/good,sim/poor",
        ]
    )
    assert code == 0
    rep = json.loads((out / "agreement.json").read_text())
    assert rep["variants"][-1]["name"] == "pair" and rep["variants"][-1]["kind"] == "majority"
    html = (out / "agreement.html").read_text()
    # pairwise kappa, agreement, alpha, overall confusion + one confusion plot per dimension
    assert html.count("data:image/png;base64,") == 4 + 3
    for dim in ("dim00", "dim01", "dim02"):
        assert f'alt="confusion matrices: {dim}"' in html
    assert (
        judge_main(
            [
                "report",
                "--key",
                str(key_path),
                "--ratings",
                str(ratings_path),
                "--out",
                str(out),
                "--ensemble",
                "bad=majority:nope",
            ]
        )
        == 2
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,rater,value\nnot-an-item,a,yes\n")
    assert (
        judge_main(["report", "--key", str(key_path), "--ratings", str(bad), "--out", str(out)])
        == 2
    )
