"""HellaSwag: harness preprocessing, loading and validation, generate and loglik modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model

from caml_evals.datasource import DataSourceError
from caml_evals.scoring.choice import LOGLIK_QUERY_KEY
from caml_evals.tasks.hellaswag.dataset import (
    HUB_REVISION,
    build_samples,
    hellaswag_dataset,
    preprocess,
)
from caml_evals.tasks.hellaswag.task import hellaswag

FIXTURES = Path(__file__).parent / "fixtures" / "controls"


def _rows() -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / "hellaswag.jsonl").read_text().splitlines()]


def test_preprocess_matches_the_harness():
    # the harness strips *before* dropping markers, so a leading "[header] " leaves a space
    assert (
        preprocess("  [header] How to x [title] Do y. [step] Then z.  ")
        == " How to x. Do y. Then z."
    )
    assert preprocess("a  b") == "a b"
    assert preprocess("keep (round) brackets") == "keep (round) brackets"


def test_fixture_samples_follow_the_harness_format():
    dataset, report = hellaswag_dataset(data_dir=str(FIXTURES))
    assert report.problems == [] and report.samples == len(_rows()) == len(dataset)
    first = dataset[0]
    # ctx = ctx_a + " " + ctx_b.capitalize(), prefixed by the activity label
    assert first.input == "Roof shingle removal: A man is sitting on a roof. He"
    assert first.target == "D" and first.choices[3] == "starts pulling up roofing on a roof."
    query = first.metadata[LOGLIK_QUERY_KEY]
    assert query["context"] == first.input
    assert query["continuations"] == [" " + c for c in first.choices]
    assert query["norm_lengths"] == [len(c) for c in first.choices]
    wikihow = next(s for s in dataset if s.id == "5012")
    assert "[" not in wikihow.input and wikihow.input.startswith("Home and Garden: How to repot")
    assert wikihow.target == "A"


def test_bad_rows_are_reported_not_dropped_silently():
    rows = _rows()[:3]
    rows.append({**rows[0], "ind": 9001, "label": ""})  # test-split style: no label
    rows.append({**rows[0], "ind": 9002, "endings": ["only", "three", "endings"]})
    rows.append({**rows[0], "ind": 9003, "label": 7})
    rows.append(dict(rows[1]))  # duplicate ind
    samples, report = build_samples(rows, "test")
    assert len(samples) == 3
    assert report.counts() == {"invalid_row": 3, "duplicate_id": 1}
    assert {p.row_id for p in report.problems} == {"9001", "9002", "9003", str(rows[1]["ind"])}
    assert "label" in report.summary()


def test_offline_hub_load_gives_an_actionable_error(monkeypatch):
    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataSourceError, match="hellaswag/validation.jsonl"):
        hellaswag_dataset()
    assert len(HUB_REVISION) == 40


def test_explicit_data_dir_without_data_is_an_error(tmp_path):
    with pytest.raises(DataSourceError, match="No hellaswag data"):
        hellaswag_dataset(data_dir=str(tmp_path))


def test_data_dir_may_be_the_hellaswag_file_but_not_another_file():
    dataset, _ = hellaswag_dataset(data_dir=str(FIXTURES / "hellaswag.jsonl"))
    assert len(dataset) == len(_rows())
    with pytest.raises(DataSourceError, match="expected a file named"):
        hellaswag_dataset(data_dir=str(FIXTURES / "strongreject_dataset.csv"))


def test_env_pool_without_hellaswag_falls_back_to_the_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("CAML_EVALS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataSourceError, match="offline mode"):  # reached the Hub branch
        hellaswag_dataset()


def test_generate_mode_scores_letters_and_counts_unparsed(tmp_path):
    """Scripted replies: correct letter, wrong letter, lenient 'B) ...', and no letter at all."""
    gold = {s.input: s.target for s in hellaswag_dataset(data_dir=str(FIXTURES))[0]}

    def responder(prompt: str) -> str:
        target = next(t for ctx, t in gold.items() if ctx in prompt)
        if "Roof shingle" in prompt:
            return f"ANSWER: {target}"
        if "Clean and jerk" in prompt:
            return "ANSWER: A"  # wrong (gold D)
        if "Canoeing" in prompt:
            return f"{target}) sit in a canoe"  # lenient parse
        return "I would rather not say."

    [log] = inspect_eval(
        hellaswag(data_dir=str(FIXTURES)),
        model=get_model("scripted/mc", responder=responder, memoize=False),
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success"
    by_id = {s.id: s for s in log.samples}
    assert by_id["24"].scores["choice"].value == "C"
    assert by_id["92"].scores["choice"].value == "I"
    assert by_id["106"].scores["choice"].value == "C"
    assert by_id["106"].metadata["answer_parse"] == "lenient"
    assert by_id["7321"].scores["answer_parsed"].value["unparsed"] == 1.0
    metrics = {m: v.value for s in log.results.scores for m, v in s.metrics.items()}
    assert metrics["accuracy"] == pytest.approx(2 / 6)
    assert metrics["unparsed"] == pytest.approx(3 / 6)


def test_loglik_mode_refuses_a_model_without_token_logprobs(tmp_path):
    [log] = inspect_eval(
        hellaswag(data_dir=str(FIXTURES), mode="loglik"),
        model=get_model("scripted/x", reply="ANSWER: A", memoize=False),
        limit=1,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "error"
    assert "needs a local transformers model" in log.error.message


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="mode must be one of"):
        hellaswag(data_dir=str(FIXTURES), mode="vibes")


@pytest.mark.slow
def test_loglik_end_to_end_on_the_embedded_model(tmp_path):
    [log] = inspect_eval(
        hellaswag(data_dir=str(FIXTURES), mode="loglik"),
        model="caml/smollm2",
        limit=2,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    assert len(log.samples) == 2
    for sample in log.samples:
        score = sample.scores["loglik_accuracy"]
        result = score.metadata
        logliks, lengths = result["logliks"], result["norm_lengths"]
        assert len(logliks) == 4 and all(x < 0 for x in logliks)
        gold = "ABCD".index(sample.target)
        assert score.value["acc"] == float(max(range(4), key=logliks.__getitem__) == gold)
        norm = max(range(4), key=lambda i: logliks[i] / lengths[i])
        assert score.value["acc_norm"] == float(norm == gold)
    metrics = {m: v.value for s in log.results.scores for m, v in s.metrics.items()}
    assert 0.0 <= metrics["acc_norm"] <= 1.0 and metrics["n_present"] == 2
