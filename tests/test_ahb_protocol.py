"""AHB beyond the differential test: provenance, gated data, source clusters, unique renamed
ids, reserved dimension names, and data errors as one clear line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model

from caml_evals.errors import DataSourceError, TaskArgumentError
from caml_evals.scoring.clustered import clustered_mean_se
from caml_evals.tasks.ahb.dataset import HUB_REPO_ID, HUB_REVISION, build_samples
from caml_evals.tasks.ahb.task import ahb

ROOT = Path(__file__).resolve().parents[1]
AHB_DIR = ROOT.parent / "shared" / "data" / "ahb-2.1"
needs_data = pytest.mark.skipif(
    not (AHB_DIR / "questions.jsonl").is_file(), reason=f"AHB 2.1 data missing under {AHB_DIR}"
)

DIMS = [
    {"dimension": "Harm Minimization", "guiding_question": "Does it reduce harm?"},
    {"dimension": "Moral Consideration", "guiding_question": "Does it consider {{animal}}?"},
]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@needs_data
def test_local_data_is_recorded_as_local_with_sha256_not_as_the_hub_pin() -> None:
    task = ahb(data_dir=str(AHB_DIR.parent))
    assert "hub" not in task.metadata
    origins = task.metadata["data_source"]
    assert [(o["part"], o["kind"]) for o in origins] == [
        ("questions", "local"),
        ("dimensions", "local"),
    ]
    import hashlib

    assert origins[0]["sha256"] == hashlib.sha256(
        (AHB_DIR / "questions.jsonl").read_bytes()
    ).hexdigest()
    assert task.metadata["data_version"] == "AHB 2.1 (local copy)"


@needs_data
def test_hub_data_is_recorded_with_its_revision(monkeypatch) -> None:
    import datasets

    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    monkeypatch.setattr(
        datasets, "load_dataset", lambda repo, config, split, revision: _rows(AHB_DIR / f"{config}.jsonl")
    )
    task = ahb()
    assert task.metadata["hub"] == {"repo_id": HUB_REPO_ID, "revision": HUB_REVISION}
    assert {o["kind"] for o in task.metadata["data_source"]} == {"hub"}
    assert task.metadata["data_version"].startswith("ANIMA 2.2")


def test_gated_or_refused_hub_data_names_hf_token_and_the_terms_page(monkeypatch) -> None:
    import datasets

    def refuse(*a, **k):
        raise ConnectionError("401 Client Error: this dataset is gated; you must be authenticated")

    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", refuse)
    with pytest.raises(DataSourceError) as err:
        ahb()
    message = str(err.value)
    assert "HF_TOKEN" in message and f"https://huggingface.co/datasets/{HUB_REPO_ID}" in message
    assert "\n" not in message


@needs_data
def test_every_sample_has_source_id_and_translations_share_it() -> None:
    task = ahb(data_dir=str(AHB_DIR.parent))
    by_id = {s.id: s for s in task.dataset}
    rows = _rows(AHB_DIR / "questions.jsonl")
    originals = [r["id"] for r in rows if not r["language"]]
    assert all(by_id[i].metadata["source_id"] == str(i) for i in originals)
    groups: dict[str, set] = {}
    for r in rows:
        if r["language"]:
            groups.setdefault(" ".join(r["translation"].split()).casefold(), set()).add(
                by_id[r["id"]].metadata["source_id"]
            )
    assert len(groups) == 71 and all(len(ids) == 1 for ids in groups.values())
    assert len({s.metadata["source_id"] for s in task.dataset}) == 26 + 71


@needs_data
def test_cluster_by_source_puts_translations_in_one_cluster(tmp_path: Path) -> None:
    ids = [28, 29, 30, 31, 0, 1, 2, 3]  # four renderings of one question, four originals

    def judge(prompt: str) -> str:
        return "GRADE: C" if sum(map(ord, prompt)) % 3 else "GRADE: I"

    results = {}
    for mode in ("question", "source"):
        [log] = inspect_eval(
            ahb(data_dir=str(AHB_DIR.parent), epochs=1, cluster_by=mode),
            model=get_model("scripted/m", memoize=False, responder=lambda p: f"answer {len(p)}"),
            model_roles={"grader": get_model("scripted/j", memoize=False, responder=judge)},
            sample_id=ids,
            log_dir=str(tmp_path / mode),
            display="none",
        )
        assert log.status == "success", log.error
        metrics = {k: m.value for s in log.results.scores for k, m in s.metrics.items()}
        overall = [s.scores["rubric_scorer"].value["overall"] for s in log.samples]
        clusters = [s.metadata["cluster_id"] for s in log.samples]
        assert metrics["overall_stderr"] == pytest.approx(clustered_mean_se(overall, clusters)[1])
        results[mode] = (metrics["overall"], clusters)
    assert results["question"][0] == results["source"][0]  # same mean
    assert len(set(results["question"][1])) == 8 and len(set(results["source"][1])) == 5


def test_cluster_by_rejects_other_values() -> None:
    with pytest.raises(TaskArgumentError, match="cluster_by"):
        ahb(data_dir=str(AHB_DIR.parent), cluster_by="language")


def test_renamed_duplicate_ids_never_collide_with_real_ids() -> None:
    """Defect 7: `5` twice and a real `5~2` must give three distinct ids."""
    questions = [
        {"id": 5, "question": "first five", "tags": ["Harm Minimization"]},
        {"id": 5, "question": "second five", "tags": ["Harm Minimization"]},
        {"id": "5~2", "question": "a real id that looks renamed", "tags": ["Harm Minimization"]},
    ]
    samples, report, _ = build_samples(questions, DIMS, "fixture")
    assert [s.id for s in samples] == [5, "5~3", "5~2"]
    assert len({str(s.id) for s in samples}) == 3
    assert report.counts() == {"duplicate_id": 1} and "kept as 5~3" in report.summary()


@pytest.mark.parametrize("name", ["overall", "Missing_Rate", "overall@grader", "overall_mean"])
def test_reserved_dimension_names_are_a_data_error(name: str) -> None:
    """Defect 2: a dimension named like a score key would overwrite the headline."""
    dims = DIMS + [{"dimension": name, "guiding_question": "Is it good?"}]
    with pytest.raises(DataSourceError, match="is reserved"):
        build_samples([{"id": 1, "question": "q", "tags": [name]}], dims, "fixture")


def test_dimension_table_errors_are_one_line_naming_the_rows() -> None:
    dims = DIMS + [{"dimension": "No Question"}, {"guiding_question": "nameless?"}]
    with pytest.raises(DataSourceError, match=r"fixture: 2 unusable dimension row\(s\).*row 2.*row 3"):
        build_samples([{"id": 1, "question": "q", "tags": ["Harm Minimization"]}], dims, "fixture")
    with pytest.raises(DataSourceError, match="lists 'Harm Minimization' twice"):
        build_samples([{"id": 1, "question": "q", "tags": []}], DIMS + DIMS[:1], "fixture")


def test_non_utf8_and_empty_question_files_are_data_errors(tmp_path: Path) -> None:
    dims = tmp_path / "dimensions.jsonl"
    dims.write_text("\n".join(json.dumps(d) for d in DIMS))
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"id": 1, "question": "caf\xe9", "tags": []}\n'.encode("latin-1"))
    with pytest.raises(DataSourceError, match="latin.jsonl: not UTF-8"):
        ahb(questions_file=str(latin), dimensions_file=str(dims))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataSourceError, match="empty.jsonl: the file has no rows"):
        ahb(questions_file=str(empty), dimensions_file=str(dims))


def test_weights_come_from_default_weighting_and_weight_overall() -> None:
    dims = [
        {**DIMS[0], "default_weighting": 3.0},
        {**DIMS[1], "default_weighting": 1.0},
    ]
    samples, _, table = build_samples(
        [{"id": 1, "question": "q", "tags": ["Harm Minimization", "Moral Consideration"]}],
        dims,
        "fixture",
    )
    assert table.weights() == {"Harm Minimization": 3.0, "Moral Consideration": 1.0}
    from caml_evals.scoring.grades import Grade, score_value

    rubric = samples[0].metadata["rubric"]
    weights = {c["name"]: c["weight"] for c in rubric}
    grades = [
        Grade(dimension="Harm Minimization", grader="g", value=1.0),
        Grade(dimension="Moral Consideration", grader="g", value=0.0),
    ]
    value = score_value(grades, ["Harm Minimization", "Moral Consideration"], weights=weights)
    assert value["overall"] == pytest.approx(0.75)  # (3 * 1 + 1 * 0) / 4, as upstream
    assert not math.isnan(value["missing_rate"])


def test_logprob_grading_keeps_the_yes_no_scale() -> None:
    task = ahb(data_dir=str(AHB_DIR.parent), judge_logprobs=True) if AHB_DIR.is_dir() else None
    if task is None:
        pytest.skip("AHB data missing")
    assert task.metadata["judging"]["verdict"] == "yes_no"
    with pytest.raises(TaskArgumentError, match="verdict=yes_no"):
        ahb(data_dir=str(AHB_DIR.parent), judge_logprobs=True, verdict="ci")
