"""A small grid with every feature of examples/tiny.yaml (two training seeds, a corpus-size sweep,
a token budget and `sft.eval_every`), end to end: real TRL stages, intermediate SFT checkpoints
merged into their own models, AHB evals of `caml/<path>` judged by a scripted grader, the decay
curve in results; a killed point merge resumes without retraining; a rerun does nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from caml_train import experiment
from caml_train.config import ExperimentConfig, load_config
from caml_train.decay import PointNotReached, merge_point, read_point
from caml_train.experiment import ExperimentError, plan, run_experiment
from caml_train.runcard import read_run_card

pytestmark = pytest.mark.slow
TINY = Path(__file__).resolve().parents[1] / "examples" / "tiny"


def _judge(prompt: str) -> str:
    answer = prompt.split("[Answer]:", 1)[1].split("***", 1)[0]
    return "GRADE: YES" if hashlib.sha256(answer.encode()).digest()[0] % 2 else "GRADE: NO"


def _config(tmp: Path, ahb_dir: Path) -> Path:
    docs = tmp / "docs.jsonl"
    docs.write_text("".join(TINY.joinpath("documents.jsonl").read_text().splitlines(True)[:4]))
    raw = {
        "name": "decay-test",
        "output_dir": "runs",
        "seeds": [0, 1],
        "budget": {"target_tokens": 60},  # one step of two 64-token rows
        "hparams": {
            "max_length": 64,
            "per_device_train_batch_size": 2,
            "warmup_steps": 0.0,
            "logging_steps": 1,
            "lora": {"r": 2, "alpha": 4, "dropout": 0.0},
        },
        "arms": {
            "document": {"stage": "text", "corpus": {"path": "docs.jsonl"}, "corpus_sizes": [2, 4]}
        },
        # 4 rows, 2 per step: 2 steps. Every sample asks for a checkpoint at 1, 2 and 3 samples;
        # whole steps hold 2, so the first is at step 1 (2 samples) and the others are not reached.
        "sft": {"data": {"path": str(TINY / "sft.jsonl")}, "sizes": [4], "eval_every": 1},
        "eval": {
            "tasks": [
                {
                    "task": "caml_evals/ahb",
                    "limit": 1,
                    "args": {"judge_mode": "per_dimension", "verdict": "yes_no", "epochs": 1},
                }
            ],
            "data_dir": str(ahb_dir.parent),
            "max_tokens": 4,
        },
        "results": {"reference_arms": [], "n_resamples": 100},
    }
    path = tmp / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_small_grid_with_seeds_sweep_budget_and_decay_points(
    tmp_path: Path, ahb_dir: Path, embedded_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inspect_ai.model import get_model
    from safetensors.torch import load_file

    config = load_config(_config(tmp_path, ahb_dir), ExperimentConfig)
    grader = get_model("scripted/judge", responder=_judge, memoize=False)
    p = plan(config)
    points = [s for s in p.stages if s.point is not None]
    assert [s.label for s in points if s.seed == 0] == [
        f"document@{n}/sft-4@{k}@seed0" for n in (2, 4) for k in (1, 2, 3)
    ]
    assert p.columns == ["arm", "sft-4"]  # points are curve cells, not table columns
    sft = next(s for s in p.stages if s.label == "document@2/sft-4@seed0")
    assert sft.train_config.hparams.save_steps == 0.25 and sft.train_config.hparams.keep_checkpoints

    # Run 1: the first point merge dies (as a kill would); everything else is kept.
    real_merge, merges = experiment.merge_point, []

    def dying_merge(*args, **kw):
        merges.append(args[2])
        if len(merges) == 1:
            raise RuntimeError("simulated kill during a point merge")
        return real_merge(*args, **kw)

    monkeypatch.setattr(experiment, "merge_point", dying_merge)
    with pytest.raises(ExperimentError, match="simulated kill"):
        run_experiment(config, grader=grader)
    manifest = json.loads((config.output_dir / "experiment.json").read_text())
    assert len(manifest["last_run"]["trained"]) == 8  # 4 arm stages (2 sizes x 2 seeds), 4 SFT
    assert len(manifest["last_run"]["merged_points"]) == 3
    assert len(manifest["last_run"]["points_not_reached"]) == 8

    # Run 2: nothing trains; only the killed point is merged and evaluated.
    trained: list[str] = []
    monkeypatch.setattr(experiment, "merge_point", real_merge)
    real_train = experiment.train
    monkeypatch.setattr(
        experiment, "train", lambda cfg, **kw: (trained.append(cfg.stage), real_train(cfg, **kw))[1]
    )
    report = run_experiment(config, grader=grader)
    assert trained == [] and report.merged == ["document@2/sft-4@1@seed0"]
    assert report.evaluated == ["caml_evals/ahb on document@2/sft-4@1@seed0"]

    # The point is checkpoint 1 of its SFT stage: step 1, its loss is the stage's first step's.
    pt = next(s for s in p.stages if s.label == "document@2/sft-4@1@seed0")
    card, final = read_run_card(pt.directory / "merged"), read_run_card(sft.directory / "merged")
    info = read_point(pt.directory)
    assert card.global_step == 1 and final.global_step == 2 and card.stage_key == pt.key
    assert card.train_loss == final.loss_history[0]["loss"]
    assert 0 < card.target_tokens_trained < final.target_tokens_trained
    assert info["samples"] == 2.0 and info["save_every_steps"] == 1  # 1 sample -> a whole step
    weights = [
        load_file(d / "model.safetensors")
        for d in (pt.directory / "merged", sft.directory / "merged")
    ]
    name = next(k for k in weights[0] if "q_proj" in k)
    assert not (weights[0][name] == weights[1][name]).all()  # an earlier model than the stage's
    assert not list(sft.directory.glob("checkpoint-*"))  # dropped once its points were merged
    with pytest.raises(PointNotReached, match="trained 2 steps, saved every 1"):
        merge_point(sft.directory, sft.train_config, 2, tmp_path / "extra", "k")

    # The decay curve: per row and SFT stage, 0 (arm stage), 2 (the point), 4 (the stage).
    results = json.loads(report.results_json.read_text())
    curve = [q for q in results["decay"] if q["arm"] == "document@2"]
    assert [(q["cell"], q["sft_samples"]) for q in curve] == [
        ("arm", 0.0),
        ("sft-4@1", 2.0),
        ("sft-4", 4.0),
    ]
    assert all(q["n_seeds"] == 2 and q["ci_low"] <= q["mean"] <= q["ci_high"] for q in curve)
    pooled = {(c["arm"], c["column"]): c for c in results["pooled"]}
    assert curve[1]["mean"] == pooled[("document@2", "sft-4@1")]["summary"]["mean"]
    assert len(results["curve_notes"]) == 8 and "not reached" in results["curve_notes"][0]
    assert (config.output_dir / "decay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((config.output_dir / "decay.json").read_text()) == results["decay"]
    assert {q["n_documents"] for q in results["scaling"]} == {2, 4}  # the sweep's curve too
    md = report.results_md.read_text()
    assert "`decay.png` / `decay.json`" in md and "Decay points not made:" in md
    assert "| document@2 | 2 |" in md
    exposure = [e for e in results["exposure"] if e["column"] == "arm"]
    assert all(e["target_tokens_trained"] >= 60 for e in exposure)  # the budget was trained

    # Run 3: nothing left; the same numbers.
    again = run_experiment(config, grader=grader)
    assert trained == [] and again.merged == [] and again.evaluated == []
    assert json.loads(again.results_json.read_text())["decay"] == results["decay"]
