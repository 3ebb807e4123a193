"""`eval.probes: [depth, persona]` in the grid: both analyses run on every local checkpoint
(a one-step document stage and the untouched base), are cached by stage key, and give the
results their columns; the depth numbers are the library function's on the same models."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from caml_train.experiment import plan, run_experiment

sys.path.insert(0, str(Path(__file__).parent))  # works under any pytest import mode
from test_experiment_results import ahb_task, load_experiment

pytestmark = pytest.mark.slow
TINY = Path(__file__).resolve().parents[1] / "examples" / "tiny"


def _judge(prompt: str) -> str:
    answer = prompt.split("[Answer]:", 1)[1].split("***", 1)[0]
    return "GRADE: YES" if hashlib.sha256(answer.encode()).digest()[0] % 2 else "GRADE: NO"


def test_grid_probes_every_checkpoint_and_caches_by_stage_key(
    tmp_path: Path, ahb_dir: Path, embedded_checkpoint: Path
) -> None:
    from inspect_ai.model import get_model

    from caml_evals.probes.depth import depth_profiles, load_local, task_questions

    raw = {
        "name": "probe-test",
        "output_dir": "runs",
        "hparams": {
            "max_length": 64,
            "per_device_train_batch_size": 2,
            "max_steps": 1,
            "warmup_steps": 0.0,
            "learning_rate": 5.0e-3,  # one step that moves the model measurably
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        },
        "arms": {
            "document": {"stage": "text", "corpus": {"path": str(TINY / "documents.jsonl")}},
            "base": {"stage": None},
        },
        "eval": {
            "tasks": [ahb_task(1)],
            "data_dir": str(ahb_dir.parent),
            "max_tokens": 4,
            "probes": ["depth", "persona"],
            "probe_questions": 2,
            "probe_max_tokens": 6,
        },
        "results": {"reference_arms": ["base"], "n_resamples": 100},
    }
    config = load_experiment(tmp_path, raw)
    grader = get_model("scripted/judge", responder=_judge, memoize=False)
    report = run_experiment(config, grader=grader)
    assert sorted(report.probed) == [
        "depth on document/arm",
        "persona on base/arm",
        "persona on document/arm",
    ]  # the base model is not compared with itself
    results = json.loads(report.results_json.read_text())
    rows = {(r["probe"], r["arm"]): r["values"] for r in results["probes"]}
    assert set(rows) == {("depth", "document"), ("persona", "document"), ("persona", "base")}
    depth = rows[("depth", "document")]
    assert depth["mean_kl_first"] > 0 and depth["answers"] == 2
    d = results["persona_direction"]
    assert 1 <= d["layer"] and 0 <= d["held_out_accuracy"] <= 1 and d["held_out_pairs"] >= 1
    assert rows[("persona", "base")]["layer"] == d["layer"]
    assert rows[("persona", "document")]["projection"] != rows[("persona", "base")]["projection"]

    # The grid's depth is the library's, on the same two models and questions.
    doc = next(s for s in plan(config).stages if s.label == "document/arm")
    questions = task_questions("caml_evals/ahb", 2, {"data_dir": str(ahb_dir.parent)})
    direct = depth_profiles(
        load_local("caml/smollm2"), load_local(doc.model_spec), questions, max_new_tokens=6,
        answers_from=("tuned",),
    )  # fmt: skip
    assert depth["mean_kl_first"] == pytest.approx(direct.profiles[0].mean_kl_first)
    md = report.results_md.read_text()
    assert "## Probes" in md and "Depth (KL from the base model" in md
    assert f"layer {d['layer']} of" in md and "| document |" in md

    again = run_experiment(config, grader=grader)
    assert again.probed == [] and len(again.cached_probes) == 3
    assert json.loads(again.results_json.read_text())["probes"] == results["probes"]
