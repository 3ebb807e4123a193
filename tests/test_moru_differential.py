"""Differential test: our `moru` under its defaults (the published protocol) against the upstream
`inspect_evals` MORU task, on fixtures in the upstream schema (`tests/fixtures/moru_upstream/`).

One deterministic scripted model and one deterministic scripted grader for both: the verdict
depends only on what both protocols show the judge (the answer token and the dimension's guiding
question), and is sometimes unparseable (an unoffered letter or no verdict). Upstream loads from
the Hub; its two loader functions are replaced by ones reading the fixtures.

Asserted: the same samples (ids `<id>_<language>`, the exact duplicate row counted once), equal
per-sample scores, equal `overall_mean` and per-dimension metrics (lower-cased names), equal
grader-call counts, the same epochs, and the columns upstream ignores left unused. Then the
places where we deliberately differ, each shown against upstream.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from inspect_ai import eval
from inspect_ai.dataset import MemoryDataset
from inspect_ai.model import get_model

pytest.importorskip("inspect_evals.moru")

import inspect_evals.moru.dataset as upstream_dataset
from inspect_evals.moru import moru as upstream_moru

from caml_evals.errors import DataSourceError, TaskArgumentError
from caml_evals.tasks.moru.task import moru

FIXTURE = Path(__file__).parent / "fixtures" / "moru_upstream"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _h(*parts: str) -> int:
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:8], 16)


def answerer(prompt: str) -> str:
    return f"My considered answer. ANS-{_h(prompt) % 10_000:04d}"


class Judge:
    def __init__(self, dimensions: list[dict]):
        self.calls = 0
        self.dimensions = dimensions

    def __call__(self, prompt: str) -> str:
        self.calls += 1
        token = re.search(r"ANS-\d{4}", prompt).group(0)
        [name] = [d["dimension"] for d in self.dimensions if d["guiding_question"] in prompt]
        pick = _h(token, name) % 7
        if pick < 3:
            return "It weighs them.\nGRADE: C"
        if pick < 6:
            return "It does not.\nGRADE: I"
        return "Somewhat.\nGRADE: P" if _h(token) % 2 else "No verdict from me."


@pytest.fixture
def upstream_reads(monkeypatch):
    """Upstream's `hf_dataset` / `load_dataset`, served from a folder in the Hub schema."""
    folder = {"path": FIXTURE}

    def load_dataset(repo_id, split, revision):
        assert repo_id == upstream_dataset.DIMENSIONS_REPO_ID
        return _rows(folder["path"] / "dimensions.jsonl")

    def hf_dataset(path, revision, split, sample_fields, shuffle, auto_id):
        assert path == upstream_dataset.DATASET_REPO_ID
        samples = []
        for row in _rows(folder["path"] / "questions.jsonl"):
            converted = sample_fields(row)
            samples.extend(converted if isinstance(converted, list) else [converted])
        return MemoryDataset(samples)

    monkeypatch.setattr(upstream_dataset, "load_dataset", load_dataset)
    monkeypatch.setattr(upstream_dataset, "hf_dataset", hf_dataset)
    return folder


def _judge_model(judge):
    return get_model("scripted/judge", memoize=False, responder=judge)


def _upstream(judge=None, **kw):
    return upstream_moru(grader_models=[_judge_model(judge or (lambda p: "GRADE: C"))], **kw)


def _run(task, judge, tmp_path: Path, name: str, **kw):
    [log] = eval(
        task,
        model=get_model("scripted/answerer", memoize=False, responder=answerer),
        model_roles={"grader": _judge_model(judge)},
        log_dir=str(tmp_path / name),
        display="none",
        **kw,
    )
    assert log.status == "success", log.error
    return log


def _metrics(log) -> dict[str, float]:
    return {k: m.value for s in log.results.scores for k, m in s.metrics.items()}


def test_defaults_and_samples_match_upstream(upstream_reads) -> None:
    ours, theirs = moru(data_dir=str(FIXTURE)), _upstream()
    assert ours.epochs == theirs.epochs == 5
    assert [s.id for s in ours.dataset] == [s.id for s in theirs.dataset]
    assert [s.input for s in ours.dataset] == [s.input for s in theirs.dataset]  # no suffix
    assert [s.metadata["dimensions"] for s in ours.dataset] == [
        json.loads(s.target)["tags"] for s in theirs.dataset
    ]
    assert ours.metadata["dataset_problems"] == {"duplicate_row": 1}  # counted once, reported
    first = next(iter(ours.dataset))
    assert first.metadata["question_type"] == "open"  # kept in metadata, unused by the scorer
    assert all(c["weight"] == 1.0 for s in ours.dataset for c in s.metadata["rubric"])


def test_same_scores_metrics_and_grader_calls_as_upstream(upstream_reads, tmp_path) -> None:
    dims = _rows(FIXTURE / "dimensions.jsonl")
    their_judge, our_judge = Judge(dims), Judge(dims)
    theirs = _run(_upstream(their_judge), their_judge, tmp_path, "upstream", epochs=2)
    ours = _run(moru(data_dir=str(FIXTURE), epochs=2), our_judge, tmp_path, "ours")
    assert our_judge.calls == their_judge.calls > 0

    their_scores = {(s.id, s.epoch): s.scores["moru_scorer"].value for s in theirs.samples}
    our_scores = {(s.id, s.epoch): s.scores["rubric_scorer"].value for s in ours.samples}
    assert set(their_scores) == set(our_scores)
    saw_missing = saw_unscored = False
    for key, value in their_scores.items():
        mine = our_scores[key]
        if not isinstance(value, dict):  # upstream: no usable grade -> unscored (NaN)
            saw_unscored = True
            assert mine["overall"] != mine["overall"]
            continue
        for k, v in value.items():
            assert mine[k] == pytest.approx(v), (key, k)
        saw_missing |= mine["missing_rate"] > 0
    assert saw_missing

    theirs_m, ours_m = _metrics(theirs), _metrics(ours)
    assert ours_m["overall_mean"] == pytest.approx(theirs_m["overall_mean"])
    for d in dims:
        name = d["dimension"].lower()
        assert ours_m[name] == pytest.approx(theirs_m[name]), name
    assert "source=alien_organisms" in ours_m and "language=ms" in ours_m  # our extras
    assert saw_unscored or ours_m["missing_rate"] > 0


def test_divergence_unknown_language_is_a_clear_error(upstream_reads) -> None:
    """Upstream ends in "No valid samples"; we name the known languages."""
    with pytest.raises(ValueError, match="No valid samples"):
        _upstream(language="xx")
    with pytest.raises(TaskArgumentError, match=r"unknown language.*'xx'.*known: en, hi, ms"):
        moru(data_dir=str(FIXTURE), language="xx")
    assert len(moru(data_dir=str(FIXTURE), language="Malay").dataset) == 3  # names accepted


def test_divergence_a_row_without_valid_tags_is_kept_not_fatal(
    upstream_reads, tmp_path: Path
) -> None:
    """Upstream fails the whole load on one row without a known tag; we keep and report it."""
    folder = tmp_path / "moru"
    folder.mkdir()
    rows = _rows(FIXTURE / "questions.jsonl")
    rows.append({**rows[-1], "id": 99, "dimension_tags": "Kindness"})
    (folder / "questions.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (folder / "dimensions.jsonl").write_text((FIXTURE / "dimensions.jsonl").read_text())
    upstream_reads["path"] = folder
    with pytest.raises(ValueError, match="no valid dimension tags"):
        _upstream()
    task = moru(data_dir=str(tmp_path))
    assert "99_en" in {s.id for s in task.dataset}
    assert task.metadata["dataset_problems"]["no_valid_tags"] == 1


def test_bad_option_values_are_one_clear_line() -> None:
    for bad in ({"judge_mode": "both"}, {"verdict": "maybe"}, {"on_grader_error": "ignore"}):
        with pytest.raises(TaskArgumentError, match="is not one of"):
            moru(data_dir=str(FIXTURE), **bad)
    with pytest.raises(TaskArgumentError, match="epochs"):
        moru(data_dir=str(FIXTURE), epochs=0)


def test_grader_api_failure_errors_the_sample_in_both(upstream_reads, tmp_path: Path) -> None:
    """Upstream MORU's rule, ours by default: an outage errors the sample, never a verdict."""

    def judge(prompt: str):
        return RuntimeError("service unavailable") if "Europa" in prompt else "GRADE: C"

    kw = {
        "model": get_model("scripted/answerer", memoize=False, responder=answerer),
        "display": "none",
        "epochs": 1,
        "fail_on_error": False,
    }
    [theirs] = eval(_upstream(judge), log_dir=str(tmp_path / "u"), **kw)
    [ours] = eval(
        moru(data_dir=str(FIXTURE)),
        model_roles={"grader": _judge_model(judge)},
        log_dir=str(tmp_path / "o"),
        **kw,
    )
    errored = lambda log: sorted(str(s.id) for s in log.samples if s.error)
    assert errored(ours) == errored(theirs) != []
    # opting in to partial grading: the failure is a missing grade, nothing errors
    [partial] = eval(
        moru(data_dir=str(FIXTURE), on_grader_error="missing"),
        model_roles={"grader": _judge_model(judge)},
        log_dir=str(tmp_path / "p"),
        **kw,
    )
    assert errored(partial) == [] and _metrics(partial)["missing_rate"] > 0


def test_non_utf8_and_empty_files_and_reserved_names_are_data_errors(tmp_path: Path) -> None:
    folder = tmp_path / "moru"
    folder.mkdir()
    (folder / "dimensions.jsonl").write_text((FIXTURE / "dimensions.jsonl").read_text())
    (folder / "questions.jsonl").write_bytes("{\"id\": 1, \"question\": \"caf\xe9\"}\n".encode("latin-1"))
    with pytest.raises(DataSourceError, match="not UTF-8"):
        moru(data_dir=str(tmp_path))
    (folder / "questions.jsonl").write_text("\n\n")
    with pytest.raises(DataSourceError, match="has no rows"):
        moru(data_dir=str(tmp_path))
    (folder / "questions.jsonl").write_text((FIXTURE / "questions.jsonl").read_text())
    dims = _rows(FIXTURE / "dimensions.jsonl") + [
        {"dimension": "Overall", "guiding_question": "Is it good overall?"}
    ]
    (folder / "dimensions.jsonl").write_text("\n".join(json.dumps(d) for d in dims))
    with pytest.raises(DataSourceError, match="'overall' is reserved"):
        moru(data_dir=str(tmp_path))
