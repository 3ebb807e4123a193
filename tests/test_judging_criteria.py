"""Expanded criteria through the whole calibration round, on the REAL AHB 2.1 data.

AHB questions 3, 9, 10 and 17 fill `{{animal}}` in Moral Consideration's guiding question with
two animals each, so the rubric scorer grades that dimension twice per answer, once per animal,
each with its own guiding question. A scripted judge that likes only some animals grades the
two expansions of one answer differently, so an export that kept only one criterion (or one
grade) per dimension would lose items or pair a judge grade with the wrong text. Both judging
modes are run, exported, rated from the blinded set, imported and reported.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from inspect_ai import eval as inspect_eval
from inspect_ai.log import read_eval_log, write_eval_log
from inspect_ai.model import get_model

from caml_evals.judging.align import align
from caml_evals.judging.app import create_app
from caml_evals.judging.cli import main as judge_main
from caml_evals.judging.export import (
    _sha,
    add_sources,
    build_rating_set,
    criterion_keys,
    read_logs,
)
from caml_evals.judging.ratings_io import write_ratings
from caml_evals.judging.schema import HumanRating, RatingKey, RatingSet, load_rating_set
from caml_evals.judging.store import RatingStore
from caml_evals.scoring.dimensions import RubricCriterion
from caml_evals.scoring.rubric import criterion_labels
from caml_evals.tasks.ahb.dataset import ahb_dataset
from caml_evals.tasks.ahb.task import ahb

EXPANDED_IDS = ["2", "3", "9", "10", "17"]  # 2: one animal (a label with variables, one criterion)
PLAIN_IDS = ["0", "1"]  # no variables: criteria are plain dimensions, as in logs before criteria
# One of the two animals of each of 3, 9, 10, 17 (first in 3, 10, 17; second in 9).
LIKED = {"naked mole rats", "farmed pig", "fish", "cricket"}
ANSWER = "Think about the animals involved and choose the kinder option."
_ANIMAL = re.compile(r"including (.+?)s involved")
_GUIDING = re.compile(r"^\[Guiding question[^\]]*\]: (.*)$", re.MULTILINE)  # per-dimension prompts
_CRITERION = re.compile(r"^\d+\. (.+)\n   Guiding question: (.*)$", re.MULTILINE)


def meets(guiding_question: str) -> bool:
    """The scripted judge's (and the careful raters') verdict, from the guiding question alone."""
    animal = _ANIMAL.search(guiding_question)
    return (animal is not None and animal.group(1) in LIKED) or "actionable" in guiding_question


class Judge:
    """Per-dimension YES/NO or single-call JSON replies, keeping every prompt it was sent."""

    def __init__(self, mode: str):
        self.mode = mode
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if self.mode == "per_dimension":
            gq = _GUIDING.search(prompt).group(1)
            yes, no = ("C", "I") if "GRADE: $LETTER" in prompt else ("YES", "NO")
            return f"Checked.\nGRADE: {yes if meets(gq) else no}"
        grades = [
            {"dimension": label, "reason": "checked", "meets": meets(gq)}
            for label, gq in _CRITERION.findall(prompt)
        ]
        return json.dumps({"grades": grades})


def _run(data_root: Path, mode: str, ids: list[str], log_dir: Path) -> tuple[str, Judge]:
    judge = Judge(mode)
    task = ahb(data_dir=str(data_root), judge_mode=mode, epochs=1)
    ids = [s.id for s in task.dataset if str(s.id) in ids]  # the dataset's own id type
    [log] = inspect_eval(
        task,
        model=get_model("scripted/answerer", memoize=False, reply=ANSWER),
        model_roles={"grader": get_model("scripted/g", memoize=False, responder=judge)},
        sample_id=ids,
        log_dir=str(log_dir),
        display="none",
    )
    assert log.status == "success", log.error
    return log.location, judge


@pytest.fixture(scope="module")
def runs(ahb_dir: Path, tmp_path_factory) -> dict[str, tuple[str, Judge]]:
    root = tmp_path_factory.mktemp("ahb-criteria")
    return {
        mode: _run(ahb_dir.parent, mode, EXPANDED_IDS, root / mode)
        for mode in ("per_dimension", "single_call")
    }


@pytest.fixture(scope="module")
def expected(ahb_dir: Path) -> dict[tuple[str, str], dict]:
    """(sample id, criterion label) -> the rubric entry the dataset gives the scorer."""
    dataset, _ = ahb_dataset(ahb_dir.parent)
    out = {}
    for s in dataset:
        if str(s.id) in EXPANDED_IDS:
            for c in s.metadata["rubric"]:
                out[(str(s.id), c["label"])] = c
    return out


def test_the_chosen_questions_do_expand(expected):
    mc = [k for k in expected if k[1].startswith("Moral Consideration")]
    assert len(mc) == 9  # two animals in 3, 9, 10, 17, one in 2
    assert {meets(expected[k]["guiding_question"]) for k in mc if k[0] != "2"} == {True, False}
    for qid in ("3", "9", "10", "17"):  # the two expansions of one answer disagree
        verdicts = [meets(expected[k]["guiding_question"]) for k in mc if k[0] == qid]
        assert sorted(verdicts) == [False, True], qid


@pytest.mark.parametrize("mode", ["per_dimension", "single_call"])
def test_one_item_per_criterion_with_its_text_and_judge_grade(runs, expected, mode):
    path, judge = runs[mode]
    rating_set, key, problems = build_rating_set(read_logs([path]), seed=5)
    assert problems.lines() == []
    assert len(rating_set.items) == len(key.items) == len(expected)
    seen = {}
    for item in rating_set.items:
        entry = key.items[item.item_id]
        want = expected[(str(entry.sample_id), item.criterion)]
        seen[(str(entry.sample_id), item.criterion)] = item
        assert item.dimension == entry.dimension == want["name"]
        assert entry.criterion == item.criterion == item.rubric.label == want["label"]
        assert item.variables == entry.variables == want["variables"]
        assert item.rubric.guiding_question == want["guiding_question"]
        assert item.rubric.observable_indicators == want["observable_indicators"]
        # the judge was sent exactly this text for this answer ...
        assert any(item.question in p and item.rubric.guiding_question in p for p in judge.prompts)
        # ... and its grade of this criterion is the one in the key
        (source,) = entry.sources
        assert source.mode == mode
        assert {g: v.value for g, v in source.grades.items()} == {
            "grader=scripted/g": float(meets(want["guiding_question"]))
        }
    assert set(seen) == set(expected)
    wild_boar = seen[("10", "Moral Consideration [animal: wild boar]")]
    assert "including wild boars involved" in wild_boar.rubric.guiding_question
    assert wild_boar.variables == {"animal": "wild boar"}
    if mode == "single_call":  # one call per answer, each criterion listed under its label
        assert len(judge.prompts) == len(EXPANDED_IDS)
        assert any(f". {wild_boar.criterion}\n" in p for p in judge.prompts)
    else:
        assert len(judge.prompts) == len(expected)
    # blinded: no model, grader or sample identity in the public file
    public = rating_set.model_dump_json()
    assert "scripted" not in public and "GRADE" not in public
    # the criteria of one answer share its page and its bootstrap cluster
    data = align(key, [HumanRating(item_id=i, rater="ana", value=1.0) for i in key.items])
    assert len(set(data.clusters.tolist())) == len(EXPANDED_IDS)
    assert sorted(set(data.criteria.tolist())) == sorted({k[1] for k in expected})
    assert len({i.unit_id for i in rating_set.items}) == len(EXPANDED_IDS)


def human_ratings(rating_set_path: Path) -> list[HumanRating]:
    """Two raters follow the rubric; a third gets the wild-boar criterion wrong. Read from the
    BLINDED set only, as a rater would."""
    out = []
    for item in load_rating_set(rating_set_path).items:
        t = meets(item.rubric.guiding_question)
        out.append(HumanRating(item_id=item.item_id, rater="ana", value=t))
        out.append(HumanRating(item_id=item.item_id, rater="ben", value=t))
        sloppy = item.variables.get("animal") == "wild boar"
        out.append(HumanRating(item_id=item.item_id, rater="cy", value=(not t) if sloppy else t))
    return out


def test_cli_export_import_report_align_every_criterion(runs, expected, tmp_path):
    out = tmp_path / "calib"
    pd_log, sc_log = runs["per_dimension"][0], runs["single_call"][0]
    assert judge_main(["export", f"pd={pd_log}", f"sc={sc_log}", "--out", str(out)]) == 0
    summary = json.loads((out / "export.json").read_text())
    labels = {k[1] for k in expected}
    dims = {c["name"] for c in expected.values()}
    assert summary["items"] == len(expected) and summary["problems"] == []
    assert summary["criteria"] == len(labels) and summary["dimensions"] == sorted(dims)
    assert summary["judgings"] == ["pd", "sc"]  # both judgings of the same answers, merged

    ratings_file = tmp_path / "ratings.jsonl"
    write_ratings(ratings_file, human_ratings(out / "rating_set.json"))
    db = tmp_path / "ratings.sqlite"
    args = [
        "import",
        str(ratings_file),
        "--db",
        str(db),
        "--rating-set",
        str(out / "rating_set.json"),
    ]
    assert judge_main(args) == 0
    # the store keeps each item's criterion and variables
    stored = {i.item_id: i for i in RatingStore(db).items()}
    exported = {i.item_id: i for i in load_rating_set(out / "rating_set.json").items}
    assert stored == exported

    report_dir = tmp_path / "report"
    args = ["report", "--key", str(out / "key.json"), "--db", str(db), "--out", str(report_dir)]
    assert judge_main([*args, "--resamples", "50"]) == 0
    report = json.loads((report_dir / "agreement.json").read_text())
    assert report["data"]["n_items"] == len(expected)
    assert report["data"]["n_answers"] == len(EXPANDED_IDS)
    assert report["data"]["dimensions"] == sorted(dims)  # scopes: dimensions, not criteria
    assert report["data"]["n_criteria"] == len(labels)
    assert set(report["scopes"]) == {"overall", *dims}
    for variant in ("pd/grader=scripted/g", "sc/grader=scripted/g"):
        for scope in ("overall", "Moral Consideration"):
            m = report["scopes"][scope]["variants"][variant]["metrics"]
            assert m["agreement"]["value"] == 1.0, (variant, scope)
            assert m["kappa"]["value"] == pytest.approx(1.0), (variant, scope)
    # every expansion is its own item in its dimension's scope
    mc = report["scopes"]["Moral Consideration"]
    n_mc = sum(1 for c in expected.values() if c["name"] == "Moral Consideration")
    assert mc["ceiling"]["n_items"] == mc["variants"]["pd/grader=scripted/g"]["n_items"] == n_mc
    # cy's mistake is on one criterion only: it lowers the ceiling there, nowhere else
    assert mc["ceiling"]["metrics"]["pairwise_agreement"]["value"] < 1.0
    act = report["scopes"]["Actionability"]["ceiling"]["metrics"]["pairwise_agreement"]
    assert act["value"] == 1.0
    html = (report_dir / "agreement.html").read_text()
    assert f"{len(labels)} criteria" in html


def test_add_sources_matches_by_answer_and_criterion(runs, expected):
    _, key, _ = build_rating_set(read_logs([runs["per_dimension"][0]]))
    sc = runs["single_call"][0]
    attached, problems = add_sources(key, read_logs([sc]), {sc: "sc"})
    assert attached == len(expected) and problems.lines() == []
    for e in key.items.values():
        want = float(meets(expected[(str(e.sample_id), e.criterion)]["guiding_question"]))
        assert [s.grades["grader=scripted/g"].value for s in e.sources] == [want, want]


def test_the_app_shows_each_criterion_with_its_own_guiding_question(runs, tmp_path):
    rating_set, _, _ = build_rating_set(read_logs([runs["per_dimension"][0]]))
    store = RatingStore(tmp_path / "app.sqlite")
    store.load_rating_set(rating_set)
    token = store.add_rater("ana")
    pages = store.units_for("ana")
    pos = next(n for n, unit in enumerate(pages) if any("wild boar" in i.criterion for i in unit))
    client = TestClient(create_app(tmp_path / "app.sqlite"))
    page = client.get(f"/r/{token}/u/{pos}").text
    assert page.count("<h3>Moral Consideration [animal: ") == 2
    assert "including wild boars involved" in page and "including farmed pigs involved" in page


def test_criterion_keys_are_the_scorers_labels():
    rubric = [
        RubricCriterion(name="A", guiding_question="q", variables={"animal": "cat"}),
        RubricCriterion(name="A", guiding_question="q", variables={"animal": "cat"}),
        RubricCriterion(name="B", guiding_question="q"),
    ]
    dumped = [c.model_dump() for c in rubric]
    assert (
        criterion_keys(dumped)
        == criterion_labels(rubric)
        == [
            "A [animal: cat]",
            "A [animal: cat] #2",
            "B",
        ]
    )
    # logs from before criteria: no label, keyed by name
    assert criterion_keys([{"name": "A"}, {"name": "B"}]) == ["A", "B"]


def _strip_criteria(src: str, dst: Path, drop_rubric_entry: str | None = None) -> str:
    """The log as the scorer wrote it before criteria: no label/criterion/variables fields."""
    log = read_eval_log(src)
    for sample in log.samples:
        for score in sample.scores.values():
            meta = score.metadata
            for r in meta["rubric"]:
                r.pop("label", None), r.pop("variables", None)
            for g in meta["grades"]:
                g.pop("criterion", None), g.pop("variables", None)
            if drop_rubric_entry:
                meta["rubric"] = [r for r in meta["rubric"] if r["name"] != drop_rubric_entry]
    write_eval_log(log, str(dst))
    return str(dst)


def test_logs_rating_sets_and_keys_from_before_criteria_work_unchanged(ahb_dir, tmp_path):
    new, _ = _run(ahb_dir.parent, "per_dimension", PLAIN_IDS, tmp_path / "plain")
    old = _strip_criteria(new, tmp_path / "old.eval")
    meta = read_eval_log(old).samples[0].scores["rubric_scorer"].metadata
    assert not any("criterion" in g or "label" in r for g, r in zip(meta["grades"], meta["rubric"]))
    new_set, new_key, _ = build_rating_set(read_logs([new]), seed=2)
    old_set, old_key, problems = build_rating_set(read_logs([old]), seed=2)
    assert problems.lines() == []
    assert old_set.items == new_set.items
    for item in old_set.items:  # item ids as before criteria: salted with the dimension
        entry = old_key.items[item.item_id]
        assert item.criterion == item.dimension and item.variables == {}
        assert item.item_id == "i" + _sha(2, entry.content_hash, item.dimension)[:12]
        assert entry.sources[0].grades == new_key.items[item.item_id].sources[0].grades
        assert entry.sources[0].grades["grader=scripted/g"].value is not None
    # rating-set and key files written before criteria (no such fields) load with criterion =
    # dimension, and a later log attaches to them
    set_json = json.loads(old_set.model_dump_json())
    for i in set_json["items"]:
        del i["criterion"], i["variables"], i["rubric"]["label"], i["rubric"]["variables"]
    legacy_set = RatingSet.model_validate(set_json)
    plain = {"rubric": {"label"}}  # a legacy rubric has no label of its own; the item has
    assert [i.model_dump(exclude=plain) for i in legacy_set.items] == [
        i.model_dump(exclude=plain) for i in old_set.items
    ]
    legacy_db = RatingStore(tmp_path / "legacy.sqlite")
    legacy_db.load_rating_set(legacy_set)
    assert [i.criterion for i in legacy_db.items()] == [i.dimension for i in old_set.items]
    key_json = json.loads(old_key.model_dump_json())
    for e in key_json["items"].values():
        del e["criterion"], e["variables"]
    legacy = RatingKey.model_validate(key_json)
    assert all(e.criterion == e.dimension for e in legacy.items.values())
    attached, _ = add_sources(legacy, read_logs([new]), {new: "again"})
    assert attached == len(old_set.items)


def test_grades_of_no_criterion_in_the_rubric_are_reported(ahb_dir, tmp_path):
    new, _ = _run(ahb_dir.parent, "per_dimension", ["0"], tmp_path / "one")
    dropped = read_eval_log(new).samples[0].scores["rubric_scorer"].metadata["rubric"][0]["name"]
    broken = _strip_criteria(new, tmp_path / "broken.eval", drop_rubric_entry=dropped)
    rating_set, _, problems = build_rating_set(read_logs([broken]))
    assert dropped not in {i.criterion for i in rating_set.items}
    [line] = problems.lines()
    assert line.startswith("1 grade(s) left out") and repr(dropped) in line
