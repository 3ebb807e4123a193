"""The experiment grid end to end on a fast config: train -> merged checkpoints -> AHB evals of
`caml/<path>` -> results table; a failed (killed) stage resumes without redoing finished work;
a config change retrains only what it affects."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from caml_train import experiment
from caml_train.cli import main
from caml_train.config import ExperimentConfig, load_config
from caml_train.experiment import ExperimentError, plan, run_experiment

pytestmark = pytest.mark.slow
TINY = Path(__file__).resolve().parents[1] / "examples" / "tiny"


def tiny_hparams() -> dict[str, Any]:
    """One-step LoRA training on the embedded model: what every grid test trains with."""
    return {
        "max_length": 64,
        "per_device_train_batch_size": 2,
        "max_steps": 1,
        "save_steps": 1,
        "logging_steps": 1,
        "warmup_steps": 0.0,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
    }


def _judge(prompt: str) -> str:
    """A deterministic scripted grader: YES/NO by a hash of the answer, so arms differ."""
    answer = prompt.split("[Answer]:", 1)[1].split("***", 1)[0]
    return "GRADE: YES" if hashlib.sha256(answer.encode()).digest()[0] % 2 else "GRADE: NO"


def _write_config(tmp: Path, ahb_dir: Path, sizes: list[int]) -> Path:
    docs = tmp / "docs.jsonl"
    if not docs.exists():
        docs.write_text("".join(TINY.joinpath("documents.jsonl").read_text().splitlines(True)[:6]))
    raw = {
        "name": "grid-test",
        "base_model": "smollm2",
        "output_dir": "runs",
        "hparams": tiny_hparams(),
        "arms": {
            "document": {"stage": "text", "corpus": {"path": "docs.jsonl"}},
            "base": {"stage": None},
        },
        "sft": {"data": {"path": str(TINY / "sft.jsonl")}, "sizes": sizes},
        "eval": {
            "tasks": [
                {
                    "task": "caml_evals/ahb",
                    "limit": 2,
                    "args": {"judge_mode": "per_dimension", "verdict": "yes_no", "epochs": 1},
                }
            ],
            "data_dir": str(ahb_dir.parent),
            "max_tokens": 8,
        },
        "results": {"reference_arms": ["base"], "n_resamples": 200},
    }
    path = tmp / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, ahb_dir: Path, embedded_checkpoint: Path):
    from inspect_ai.model import get_model

    tmp = tmp_path_factory.mktemp("grid")
    path = _write_config(tmp, ahb_dir, [4])
    config = load_config(path, ExperimentConfig)
    grader = get_model("scripted/judge", responder=_judge, memoize=False)
    return tmp, path, config, grader


def test_killed_grid_resumes_and_finishes(grid, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, config, grader = grid
    real_train = experiment.train
    calls: list[str] = []

    def crash_on_document_sft(cfg, **kw):
        calls.append(f"{cfg.stage}:{Path(cfg.model).parent.name}")
        if cfg.stage == "sft" and cfg.model.endswith("merged"):
            raise RuntimeError("simulated kill during document/sft-4")
        return real_train(cfg, **kw)

    # Run 1: the document arm's SFT stage dies; everything else finishes and is kept.
    monkeypatch.setattr(experiment, "train", crash_on_document_sft)
    with pytest.raises(ExperimentError, match="document/sft-4"):
        run_experiment(config, grader=grader)
    manifest = json.loads((config.output_dir / "experiment.json").read_text())
    assert manifest["last_run"]["trained"] == ["document/arm", "base/sft-4"]
    assert len(manifest["last_run"]["evaluated"]) == 3
    assert "document/sft-4" in (config.output_dir / "results.md").read_text()  # failure listed

    # Run 2: only the failed stage trains and only its eval runs.
    calls.clear()
    monkeypatch.setattr(
        experiment, "train", lambda cfg, **kw: (calls.append(cfg.stage), real_train(cfg, **kw))[1]
    )
    report = run_experiment(config, grader=grader)
    assert calls == ["sft"] and report.trained == ["document/sft-4"]
    assert sorted(report.cached_stages) == ["base/arm", "base/sft-4", "document/arm"]
    assert (
        report.evaluated == ["caml_evals/ahb on document/sft-4"] and len(report.cached_evals) == 3
    )

    # Every checkpoint was evaluated as caml/<merged dir>, and the table has every cell.
    results = json.loads(report.results_json.read_text())
    models = {(c["arm"], c["column"]): c["model"] for c in results["cells"]}
    assert models[("base", "arm")] == "caml/smollm2"
    assert models[("document", "sft-4")].startswith("caml/") and models[
        ("document", "sft-4")
    ].endswith("/merged")
    assert all(c["summary"] and c["summary"]["n_clusters"] == 2 for c in results["cells"])
    between = [c for c in results["comparisons"] if c["kind"] == "between_arms"]
    assert {(c["arm"], c["reference"], c["column"]) for c in between} == {
        ("document", "base", "arm"),
        ("document", "base", "sft-4"),
    }
    within = [c for c in results["comparisons"] if c["kind"] == "within_arm"]  # what SFT did
    assert {(c["arm"], c["reference"], c["column"]) for c in within} == {
        ("document", "document", "sft-4"),
        ("base", "base", "sft-4"),
    }
    assert all(c["comparison"]["n"] == 2 and c["comparison"]["paired"] for c in within)
    md = report.results_md.read_text()
    assert "| arm | after arm stage | +SFT 4 |" in md and "| document |" in md
    assert "Within arm (does it survive SFT?)" in md and "| base | +SFT 4 |" in md
    card = json.loads(
        Path(models[("document", "sft-4")].removeprefix("caml/"), "run_card.json").read_text()
    )
    assert card["stage"] == "sft" and card["config"]["n_samples"] == 4 and card["stage_key"]

    # Run 3: nothing left to do; same numbers.
    calls.clear()
    again = run_experiment(config, grader=grader)
    assert calls == [] and again.trained == [] and again.evaluated == []
    assert json.loads(again.results_json.read_text())["cells"] == results["cells"]


def test_config_change_retrains_only_affected_stages(
    grid, ahb_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    tmp, path, config, _ = grid
    if not (config.output_dir / "experiment.json").exists():
        pytest.skip("needs the grid run by the previous test")
    before = {s.label: s for s in plan(config).stages}
    changed = load_config(_write_config(tmp, ahb_dir, [4, 6]), ExperimentConfig)
    after = {s.label: s for s in plan(changed).stages}
    for label, st in before.items():
        assert after[label].key == st.key and after[label].done()
    assert not after["document/sft-6"].done() and not after["base/sft-6"].done()
    # the CLI shows the same plan without training anything
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "document/sft-6" in out and "to train" in out and "done" in out
    assert main(["results", str(path), "--json"]) == 0
    table = json.loads(capsys.readouterr().out)  # strict JSON: NaN written as null
    assert {c["column"] for c in table["cells"]} == {"arm", "sft-4", "sft-6"}
    assert all(c["summary"] is None for c in table["cells"] if c["column"] == "sft-6")
