"""HellaSwag: harness preprocessing, loading and validation (bad files and options), generate
and loglik modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model

from caml_evals.datasource import DataSourceError, TaskArgumentError
from caml_evals.scoring.choice import LOGLIK_QUERY_KEY
from caml_evals.tasks.hellaswag.dataset import (
    HUB_REVISION,
    build_samples,
    hellaswag_dataset,
    preprocess,
    sample_id,
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


def by_ind(dataset) -> dict:
    return {str(s.metadata["ind"]): s for s in dataset}


def test_fixture_samples_serve_both_protocols():
    dataset, report, origin = hellaswag_dataset(data_dir=str(FIXTURES))
    assert report.problems == [] and report.samples == len(_rows()) == len(dataset)
    first, row = dataset[0], _rows()[0]
    # generate mode (inspect_evals): the raw ctx and endings, upstream's stable id
    assert first.input == row["ctx"] == "A man is sitting on a roof. he"
    assert first.choices == row["endings"] and first.target == "D"
    import hashlib

    digest = hashlib.md5(f"{row['ctx']}\0{row['source_id']}".encode()).hexdigest()[:8]
    assert first.id == sample_id(row["ctx"], row["source_id"]) == f"hellaswag_{digest}"
    # loglik mode (harness): activity label + ctx_a + ctx_b.capitalize(), preprocessed endings
    query = first.metadata[LOGLIK_QUERY_KEY]
    assert query["context"] == "Roof shingle removal: A man is sitting on a roof. He"
    assert query["continuations"] == [" " + preprocess(c) for c in row["endings"]]
    assert query["norm_lengths"] == [len(preprocess(c)) for c in row["endings"]]
    wikihow = by_ind(dataset)["5012"].metadata[LOGLIK_QUERY_KEY]["context"]
    assert "[" not in wikihow and wikihow.startswith("Home and Garden: How to repot")
    assert by_ind(dataset)["5012"].target == "A"
    assert origin.kind == "local" and len(origin.sha256) == 64 and origin.rows == 6


def test_bad_rows_are_reported_not_dropped_silently():
    rows = _rows()[:3]
    rows.append({**rows[0], "ind": 9001, "label": ""})  # test-split style: no label
    rows.append({**rows[0], "ind": 9002, "endings": ["only", "three", "endings"]})
    rows.append({**rows[0], "ind": 9003, "label": 7})
    rows.append(dict(rows[1]))  # exact repeat: dropped
    rows.append({**rows[2], "ind": 9004})  # same ctx and source_id: kept under a new id
    rows.append({**rows[0], "ind": 9005, "label": float("nan")})
    rows.append({**rows[0], "ind": float("inf")})
    samples, report = build_samples(rows, "test")
    assert len(samples) == 4
    assert report.counts() == {"invalid_row": 5, "duplicate_row": 1, "duplicate_id": 1}
    assert {p.row_id for p in report.problems if p.kind == "invalid_row"} == {
        "9001",
        "9002",
        "9003",
        "9005",
        "inf",
    }
    details = " | ".join(p.detail for p in report.problems)
    assert "label" in details and "non-finite number(s) label=nan" in details
    renamed = samples[-1]
    assert renamed.id == f"{samples[2].id}~9004" and len({s.id for s in samples}) == 4


def test_offline_hub_load_gives_an_actionable_error(monkeypatch):
    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataSourceError, match="hellaswag/validation.jsonl"):
        hellaswag_dataset()
    assert len(HUB_REVISION) == 40


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "has no rows"),
        (b"\n\n", "has no rows"),
        (b'{"ind": 1}\n{broken', "line 2"),
        ('{"ind": 1, "activity_label": "Caf\u00e9"}'.encode("latin-1"), "UTF-8"),
        (b'{"ind": 1, "ctx": "x"}\n', "No usable HellaSwag rows"),  # missing columns
    ],
)
def test_bad_files_are_one_clear_error(tmp_path, content, message):
    (tmp_path / "validation.jsonl").write_bytes(content)
    with pytest.raises(DataSourceError) as err:
        hellaswag_dataset(data_dir=str(tmp_path))
    assert message in str(err.value)


def test_a_bom_does_not_break_the_first_row(tmp_path):
    (tmp_path / "validation.jsonl").write_bytes(
        b"\xef\xbb\xbf" + (FIXTURES / "hellaswag.jsonl").read_bytes()
    )
    dataset, report, _ = hellaswag_dataset(data_dir=str(tmp_path))
    assert len(dataset) == 6 and report.problems == []


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"mode": "bar"}, "-T mode='bar' is not one of 'generate', 'loglik'"),
        ({"split": "dev"}, "-T split='dev' is not one of"),
        ({"shuffle": "sometimes"}, "-T shuffle='sometimes' is not true or false"),
        ({"lenient_parse": 3}, "-T lenient_parse=3 is not true or false"),
        ({"seed": 1.5}, "-T seed=1.5 is not a whole number"),
        ({"revision": ""}, "-T revision='' is not a commit sha"),
        ({"revision": "main"}, "-T revision='main' is not a commit sha"),
    ],
)
def test_bad_options_are_one_clear_error(option, message):
    with pytest.raises(TaskArgumentError) as err:
        hellaswag(data_dir=str(FIXTURES), **option)
    assert message in str(err.value)


def test_explicit_data_dir_without_data_is_an_error(tmp_path):
    with pytest.raises(DataSourceError, match="No hellaswag data"):
        hellaswag_dataset(data_dir=str(tmp_path))


def test_data_dir_may_be_the_hellaswag_file_but_not_another_file():
    dataset, _, _ = hellaswag_dataset(data_dir=str(FIXTURES / "hellaswag.jsonl"))
    assert len(dataset) == len(_rows())
    with pytest.raises(DataSourceError, match="expected a file named"):
        hellaswag_dataset(data_dir=str(FIXTURES / "strongreject_dataset.csv"))


def test_env_pool_without_hellaswag_falls_back_to_the_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("CAML_EVALS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataSourceError, match="offline mode"):  # reached the Hub branch
        hellaswag_dataset()


@pytest.mark.parametrize("lenient", [False, True])
def test_generate_mode_scores_letters_and_counts_unparsed(tmp_path, lenient):
    """Scripted replies: correct letter, wrong letter, lenient 'B) ...', and no letter at all."""
    dataset = hellaswag_dataset(data_dir=str(FIXTURES))[0]
    gold = {s.input: s.target for s in dataset}
    ids = {str(s.metadata["ind"]): s.id for s in dataset}

    def responder(prompt: str) -> str:
        target = next(t for ctx, t in gold.items() if ctx in prompt)
        if "sitting on a roof" in prompt:
            return f"ANSWER: {target}"
        if "walks to a barbell" in prompt:
            return "ANSWER: A"  # wrong (gold D)
        if "shown in a canoe" in prompt:
            return f"{target}) sit in a canoe"  # lenient parse
        return "I would rather not say."

    [log] = inspect_eval(
        hellaswag(data_dir=str(FIXTURES), lenient_parse=lenient),
        model=get_model("scripted/mc", responder=responder, memoize=False),
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success"
    by_id = {s.id: s for s in log.samples}
    assert by_id[ids["24"]].scores["choice"].value == "C"
    assert by_id[ids["92"]].scores["choice"].value == "I"
    assert by_id[ids["106"]].scores["choice"].value == ("C" if lenient else "I")
    assert by_id[ids["7321"]].scores["answer_parsed"].value["unparsed"] == 1.0
    metrics = {m: v.value for s in log.results.scores for m, v in s.metrics.items()}
    assert metrics["accuracy"] == pytest.approx((2 if lenient else 1) / 6)
    assert metrics["unparsed"] == pytest.approx((3 if lenient else 4) / 6)
    first = log.samples[0].messages
    assert first[0].role == "system" and "most plausible" in first[0].text


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
    with pytest.raises(TaskArgumentError, match="-T mode='vibes' is not one of"):
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


def test_generate_mode_matches_inspect_evals_hellaswag(tmp_path, monkeypatch):
    """Differential: inspect_evals' hellaswag on the same rows (its Hub loader pointed at the
    fixture), the same scripted model: same ids, questions, choices, targets and accuracy."""
    upstream = pytest.importorskip("inspect_evals.hellaswag.hellaswag")
    from inspect_ai.dataset import json_dataset

    def local_hf_dataset(path, split, sample_fields, shuffle=False, revision=None, **_):
        assert path == "Rowan/hellaswag" and revision == HUB_REVISION  # same pin as ours
        return json_dataset(str(FIXTURES / "hellaswag.jsonl"), sample_fields=sample_fields)

    monkeypatch.setattr(upstream, "hf_dataset", local_hf_dataset)
    gold = {r["ctx"]: "ABCD"[int(r["label"])] for r in _rows()}

    def responder(prompt: str) -> str:  # right on 3 rows, wrong on 2, no letter on 1
        ctx = next(c for c in gold if c in prompt)
        n = list(gold).index(ctx)
        if n < 3:
            return f"ANSWER: {gold[ctx]}"
        if n < 5:
            return "ANSWER: " + ("B" if gold[ctx] != "B" else "C")
        return "no idea"

    logs = {}
    for name, task_obj in (
        ("theirs", upstream.hellaswag()),
        ("ours", hellaswag(data_dir=str(FIXTURES))),
    ):
        [logs[name]] = inspect_eval(
            task_obj,
            model=get_model("scripted/mc", responder=responder, memoize=False),
            log_dir=str(tmp_path / name),
            display="none",
        )
        assert logs[name].status == "success", logs[name].error
    theirs = {s.id: s for s in logs["theirs"].samples}
    ours = {s.id: s for s in logs["ours"].samples}
    assert set(theirs) == set(ours) and len(ours) == 6
    for sid, sample in theirs.items():
        assert ours[sid].input == sample.input and ours[sid].target == sample.target
        assert ours[sid].choices == sample.choices
        assert ours[sid].scores["choice"].value == sample.scores["choice"].value

    def accuracy(log):
        return next(s.metrics["accuracy"].value for s in log.results.scores if s.name == "choice")

    assert accuracy(logs["ours"]) == pytest.approx(accuracy(logs["theirs"])) == pytest.approx(3 / 6)


def test_loglik_with_an_api_model_is_one_line_before_any_sample(tmp_path):
    """`inspect eval` builds the task with the model under test active: the wrong provider for
    mode=loglik is refused there, as one line without a traceback, and no sample runs."""
    import subprocess
    import sys

    inspect = Path(sys.executable).with_name("inspect")
    done = subprocess.run(
        [
            str(inspect),
            "eval",
            "caml_evals/hellaswag",
            "--model",
            "scripted/x",
            "-T",
            "mode=loglik",
            "-T",
            f"data_dir={FIXTURES}",
            "--log-dir",
            str(tmp_path),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "mode='loglik' needs a local transformers model" in output
    assert "Traceback" not in output and "LoglikModeError" not in output
    assert not list(tmp_path.glob("*.eval"))  # no log: nothing ran
