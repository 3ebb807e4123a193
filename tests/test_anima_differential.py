"""Differential test: our `ahb` / `anima` under its defaults (the published protocol) against the
upstream `inspect_evals` ANIMA task, on the same real data (`../shared/data/ahb-2.1/`).

Both run under one deterministic scripted model (answers carry a token derived from the
question) and one deterministic scripted grader, whose verdict depends only on what both
protocols show the judge: the answer token, the dimension's guiding question and the variable
value it was expanded with. The grader answers C, I, an unoffered letter (P) or nothing, so
unparseable grades are exercised too. Upstream loads from the Hub; here its loader functions are
replaced by ones reading the local files (nothing else of upstream is touched).

Asserted: equal per-sample scores on the common samples, equal per-dimension and overall
metrics (`overall_mean`, `dimension_normalized_avg`, each dimension), equal grader-call counts,
the same default epochs. Upstream drops row 58 (an empty-string tag); we keep it, scored on its
valid tags, and report the empty tag: that deliberate difference is asserted as well.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from inspect_ai import eval
from inspect_ai.dataset import MemoryDataset
from inspect_ai.model import get_model

pytest.importorskip("inspect_evals.anima")

import inspect_evals.anima.dataset as upstream_dataset
from inspect_evals.anima import anima as upstream_anima

from caml_evals.tasks.ahb.task import ahb, anima

ROOT = Path(__file__).resolve().parents[1]
AHB_DIR = ROOT.parent / "shared" / "data" / "ahb-2.1"
DROPPED_BY_UPSTREAM = 58  # its tags include "" (not a dimension): upstream skips the whole row

pytestmark = pytest.mark.skipif(
    not (AHB_DIR / "questions.jsonl").is_file(), reason=f"AHB 2.1 data missing under {AHB_DIR}"
)


def _rows(name: str) -> list[dict]:
    lines = (AHB_DIR / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _h(*parts: str) -> int:
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:8], 16)


def answerer(prompt: str) -> str:
    return f"Here is my answer. ANS-{_h(prompt) % 10_000:04d}"


class Judge:
    """Verdict from (answer token, dimension, variable value); counts its calls.

    A `flaky` judge also replies with an unoffered letter (P) or no verdict. Upstream crashes
    (KeyError in its explanation) when a dimension ends with no parseable grade while others
    have one, so the comparison pairs a flaky grader with a reliable one: every dimension keeps
    a grade and the unparseable ones are still exercised (see the divergence test below).
    """

    def __init__(self, dimensions: list[dict], flaky: bool = False, salt: str = ""):
        self.calls = 0
        self.flaky = flaky
        self.salt = salt
        self.patterns = []
        for d in dimensions:
            parts = re.split(r"\{\{\s*animal\s*\}\}", d["guiding_question"])
            pattern = "(.+?)".join(re.escape(p) for p in parts)
            self.patterns.append((d["dimension"], re.compile(pattern, re.DOTALL)))

    def __call__(self, prompt: str) -> str:
        self.calls += 1
        token = re.search(r"ANS-\d{4}", prompt).group(0)
        found = []
        for name, pattern in self.patterns:
            m = pattern.search(prompt)
            if m:
                found.append((name, m.group(1) if m.groups() else ""))
        assert len(found) == 1, f"judge prompt shows {len(found)} guiding questions"
        name, value = found[0]
        pick = _h(self.salt, token, name, value) % (7 if self.flaky else 6)
        if pick < 3:
            return "The response weighs the animals' interests.\nGRADE: C"
        if pick < 6:
            return "It does not.\nGRADE: I"
        return "Partly.\nGRADE: P" if _h(token, name) % 2 else "I cannot decide."


@pytest.fixture
def upstream_reads_local_files(monkeypatch):
    """Upstream's `hf_dataset` / `load_dataset`, served from the local files."""

    def load_dataset(repo_id, config, split, revision):
        return _rows(f"{config}.jsonl")

    def hf_dataset(path, data_dir, revision, split, sample_fields, shuffle, auto_id):
        samples = []
        for row in _rows(f"{data_dir}.jsonl"):
            converted = sample_fields(row)
            samples.extend(converted if isinstance(converted, list) else [converted])
        return MemoryDataset(samples)

    monkeypatch.setattr(upstream_dataset, "load_dataset", load_dataset)
    monkeypatch.setattr(upstream_dataset, "hf_dataset", hf_dataset)


def _judge_model(judge) -> object:
    return get_model("scripted/judge", memoize=False, responder=judge)


def _upstream(*judges):
    """Upstream's task; its scorer binds the graders when built, so they are passed in."""
    judges = judges or (lambda p: "GRADE: C",)
    return upstream_anima(grader_models=[_judge_model(j) for j in judges])


def _run(task, judges, tmp_path: Path, name: str, **kw):
    judges = judges if isinstance(judges, (list, tuple)) else [judges]
    roles = {
        ("grader" if i == 0 else f"grader{i + 1}"): _judge_model(j) for i, j in enumerate(judges)
    }
    [log] = eval(
        task,
        model=get_model("scripted/answerer", memoize=False, responder=answerer),
        model_roles=roles,
        log_dir=str(tmp_path / name),
        display="none",
        max_tasks=1,
        **kw,
    )
    assert log.status == "success", log.error
    return log


def _metrics(log) -> dict[str, float]:
    return {k: m.value for s in log.results.scores for k, m in s.metrics.items()}


def _sample_scores(log) -> dict[str, dict]:
    return {str(s.id): next(iter(s.scores.values())).value for s in log.samples}


def test_defaults_are_the_published_protocol(upstream_reads_local_files) -> None:
    ours = ahb(data_dir=str(AHB_DIR.parent))
    theirs = _upstream()
    assert ours.epochs == theirs.epochs == 5
    assert {str(s.id) for s in theirs.dataset} == {str(s.id) for s in ours.dataset} - {
        str(DROPPED_BY_UPSTREAM)
    }
    # the published integer ids, not strings
    assert [s.id for s in ours.dataset][:3] == [s.id for s in theirs.dataset][:3] == [0, 1, 2]
    assert ours.metadata["judging"] == {
        "mode": "per_dimension",
        "verdict": "ci",
        "template": "anima",
        "logprobs": False,
        "on_grader_error": "error",
        "epochs": 5,
    }


def test_same_scores_metrics_and_grader_calls_as_upstream(
    upstream_reads_local_files, tmp_path: Path
) -> None:
    dims = _rows("dimensions.jsonl")
    common = [r["id"] for r in _rows("questions.jsonl") if r["id"] != DROPPED_BY_UPSTREAM]

    theirs_judges = [Judge(dims), Judge(dims, flaky=True, salt="2")]
    theirs = _run(_upstream(*theirs_judges), theirs_judges, tmp_path, "upstream", epochs=1)
    our_judges = [Judge(dims), Judge(dims, flaky=True, salt="2")]
    ours = _run(
        anima(data_dir=str(AHB_DIR.parent), graders="grader,grader2"),
        our_judges,
        tmp_path,
        "ours",
        epochs=1,
        sample_id=common,
    )

    assert len(theirs.samples) == len(ours.samples) == len(common)
    for mine, their in zip(our_judges, theirs_judges):
        assert mine.calls == their.calls > 0

    their_scores, our_scores = _sample_scores(theirs), _sample_scores(ours)
    unparseable = 0
    for sid, theirs_value in their_scores.items():
        mine = our_scores[sid]
        if not isinstance(theirs_value, dict):  # upstream: every grade unparseable -> unscored
            assert mine["overall"] != mine["overall"]  # NaN
            continue
        for key, value in theirs_value.items():
            assert mine[key] == pytest.approx(value), (sid, key)
        unparseable += mine["missing_rate"] > 0
    assert unparseable > 10  # the comparison covered missing grades, not only clean ones

    theirs_m, ours_m = _metrics(theirs), _metrics(ours)
    assert ours_m["overall_mean"] == pytest.approx(theirs_m["overall_mean"])
    assert ours_m["dimension_normalized_avg"] == pytest.approx(theirs_m["dimension_normalized_avg"])
    for d in dims:
        assert ours_m[d["dimension"]] == pytest.approx(theirs_m[d["dimension"]]), d["dimension"]

    # what we add: the missing grades are counted, not just dropped
    assert 0 < ours_m["missing_rate"] < 1


def test_divergence_a_dimension_without_any_parseable_grade(
    upstream_reads_local_files, tmp_path: Path
) -> None:
    """Upstream errors the sample (a KeyError building its explanation) when one dimension
    has no parseable grade and another has; we score that dimension missing and keep the rest."""

    row = _rows("questions.jsonl")[0]
    first, *others = row["tags"]
    assert others  # row 0 has several dimensions

    def judge(prompt: str) -> str:
        return "No verdict." if f"[Criterion]: {first}\n" in prompt else "GRADE: C"

    theirs = eval(
        _upstream(judge),
        model=get_model("scripted/answerer", memoize=False, responder=answerer),
        log_dir=str(tmp_path / "upstream"),
        display="none",
        sample_id=[0],
        epochs=1,
        fail_on_error=False,
    )[0]
    assert theirs.samples[0].error is not None and "KeyError" in theirs.samples[0].error.message
    ours = _run(ahb(data_dir=str(AHB_DIR.parent), epochs=1), judge, tmp_path, "ours", sample_id=[0])
    value = _sample_scores(ours)["0"]
    assert value[first] != value[first]  # NaN: missing
    assert value["overall"] == 1.0 and value["missing_rate"] > 0


def test_we_keep_and_report_the_row_upstream_drops(
    upstream_reads_local_files, tmp_path: Path
) -> None:
    dims = _rows("dimensions.jsonl")
    ours_task = ahb(data_dir=str(AHB_DIR.parent), epochs=1)
    problems = ours_task.metadata["dataset_report"]["problems"]
    assert [(p["question_id"], p["kind"]) for p in problems] == [
        (str(DROPPED_BY_UPSTREAM), "empty_tag")
    ]
    row = next(s for s in ours_task.dataset if s.id == DROPPED_BY_UPSTREAM)
    assert len(row.metadata["dimensions"]) == 6  # its six real tags, graded
    assert DROPPED_BY_UPSTREAM not in {s.id for s in _upstream().dataset}
    log = _run(ours_task, Judge(dims), tmp_path, "row58", sample_id=[DROPPED_BY_UPSTREAM])
    assert set(_sample_scores(log)[str(DROPPED_BY_UPSTREAM)]) >= set(row.metadata["dimensions"])


def test_grader_calls_per_sample_are_dimensions_times_values(upstream_reads_local_files) -> None:
    """One call per (dimension x variable value x grader), as upstream counts them."""
    ours = ahb(data_dir=str(AHB_DIR.parent))
    by_id = {s.id: s for s in ours.dataset}
    row = next(r for r in _rows("questions.jsonl") if r["variables"] and "," in r["variables"])
    sample = by_id[row["id"]]
    per_dim = Counter(c["name"] for c in sample.metadata["rubric"])
    values = len(row["variables"].split(":", 1)[1].split(","))
    dims = {d["dimension"]: d for d in _rows("dimensions.jsonl")}
    for name, n in per_dim.items():
        assert n == (values if "{{animal}}" in dims[name]["guiding_question"] else 1)
