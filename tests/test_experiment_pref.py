"""The grid's preference stages and preservation arms: planned as the config says (columns,
parents, keys, references, replay), refused when they cannot act, and run end to end with RLAIF
pairs (a scripted ranking judge) into the results table, resuming without a repeated call."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from caml_evals.errors import ConfigError
from caml_train.config import ExperimentConfig, load_config
from caml_train.experiment import plan, run_experiment

sys.path.insert(0, str(Path(__file__).parent))  # works under any pytest import mode
from test_experiment_grid import tiny_hparams

TINY = Path(__file__).resolve().parents[1] / "examples" / "tiny"
PAIRS = [
    {"prompt": f"Question {i}?", "chosen": f"A careful answer {i}.", "rejected": f"No {i}."}
    for i in range(6)
]


def _config(tmp: Path, **changes: Any) -> Path:
    (tmp / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    raw: dict[str, Any] = {
        "name": "pref-test",
        "base_model": "smollm2",
        "output_dir": "runs",
        "hparams": tiny_hparams(),
        "arms": {
            "document": {"stage": "text", "corpus": {"path": str(TINY / "documents.jsonl")}},
            "document_replay": {
                "stage": "text",
                "corpus": {"path": str(TINY / "documents.jsonl")},
                "replay": {"fraction": 0.2},
                "kl_to": "arm",
                "freeze_adapter": True,
            },
            "base": {"stage": None},
        },
        "sft": {"data": {"path": str(TINY / "sft.jsonl")}, "sizes": [4]},
        "pref": {"data": {"path": "pairs.jsonl"}, "sizes": [2, 4]},
        "eval": None,
    }
    for key, value in changes.items():
        raw[key] = value
    path = tmp / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _by_label(config: ExperimentConfig) -> dict[str, Any]:
    return {st.label: st for st in plan(config).stages}


def test_pref_stages_follow_each_sft_stage_with_their_own_columns(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path), ExperimentConfig)
    p = plan(config)
    assert p.columns == ["arm", "sft-4", "sft-4+pref-2", "sft-4+pref-4"]
    stages = _by_label(config)
    for arm in ("document", "document_replay", "base"):
        sft = stages[f"{arm}/sft-4"]
        for m in (2, 4):
            pref = stages[f"{arm}/sft-4+pref-{m}"]
            assert pref.parent is sft and pref.train_config.stage == "pref"
            assert pref.train_config.model == sft.model_spec
            assert pref.train_config.n_samples == m  # nested subsets of the preference set
    # the pair counts, losses and parents are in the key: every pref stage is its own
    assert len({st.key for label, st in stages.items() if "pref" in label}) == 6


def test_preservation_options_change_only_the_stages_they_act_on(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path), ExperimentConfig)
    stages = _by_label(config)
    doc, rep = stages["document/arm"], stages["document_replay/arm"]
    assert doc.key == rep.key  # the same document stage: trained once, shared by both arms
    sft, sft_rep = stages["document/sft-4"], stages["document_replay/sft-4"]
    assert sft.train_config.replay is None
    replay = sft_rep.train_config.replay
    assert replay is not None and replay.fraction == 0.2
    assert replay.documents.path == TINY / "documents.jsonl"
    assert sft_rep.key != sft.key and sft_rep.directory != sft.directory
    # freeze_adapter with LoRA stages already trains a fresh adapter on the frozen arm weights
    assert sft_rep.train_config.hparams == sft.train_config.hparams
    # kl_to: arm -> the replay arm's pref stages take the arm checkpoint as DPO's reference
    assert stages["document/sft-4+pref-2"].train_config.pref.reference is None
    ref = stages["document_replay/sft-4+pref-2"].train_config.pref.reference
    assert ref == Path(rep.model_spec)


def test_freeze_adapter_turns_full_fine_tuning_after_the_arm_into_an_adapter(
    tmp_path: Path,
) -> None:
    path = _config(tmp_path, stage_hparams={"sft": {"lora": None}, "pref": {"lora": None}})
    config = load_config(path, ExperimentConfig)
    stages = _by_label(config)
    assert stages["document/sft-4"].train_config.hparams.lora is None
    assert stages["document_replay/sft-4"].train_config.hparams.lora is not None
    assert stages["document/sft-4+pref-2"].train_config.hparams.lora is None
    assert stages["document_replay/sft-4+pref-2"].train_config.hparams.lora is not None


def test_pref_after_the_arm_and_after_sft(tmp_path: Path) -> None:
    path = _config(tmp_path, pref={"data": {"path": "pairs.jsonl"}, "after": "all"})
    config = load_config(path, ExperimentConfig)
    assert plan(config).columns == ["arm", "sft-4", "pref", "sft-4+pref"]
    stages = _by_label(config)
    assert stages["document/pref"].parent is stages["document/arm"]
    assert stages["base/pref"].train_config.model == "smollm2"  # the untouched base model


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pref": None}, "kl_to anchors the pref stages"),
        ({"sft": None, "pref": {"data": {"path": "pairs.jsonl"}}}, "pref.after: sft needs"),
        ({"pref": {"data": {"path": "pairs.jsonl"}, "loss_type": "nope"}}, "not a loss"),
        (
            {"pref": {"data": {"path": "pairs.jsonl"}, "rlaif": {"n_prompts": 2}}},
            "exactly one of",
        ),
        (
            {
                "arms": {
                    "i": {"stage": "instruct", "corpus": {"path": "x"}, "replay": {"fraction": 0.1}}
                }
            },
            "needs a `stage: text` arm",
        ),
        ({"arms": {"b": {"stage": None, "kl_to": "arm"}}}, "no arm checkpoint"),
    ],
)
def test_options_that_cannot_act_are_refused_at_load(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_config(tmp_path, **changes), ExperimentConfig)


@pytest.mark.slow
def test_rlaif_pref_stage_runs_into_the_table_and_resumes_without_calls(
    tmp_path: Path, ahb_dir: Path, embedded_checkpoint: Path
) -> None:
    from inspect_ai.model import get_model

    rlaif = {
        "n_prompts": 3,
        "samples_per_prompt": 2,
        "max_tokens": 8,
        "both_orders": False,  # the scripted judge always ranks the first answer shown best
        "judge": {"model": "scripted/ranker", "args": {"reply": "RANKING: 1 > 2"}},
    }
    path = _config(
        tmp_path,
        arms={"document": {"stage": "text", "corpus": {"path": str(TINY / "documents.jsonl")}}},
        pref={"rlaif": rlaif},
        eval={
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
        results={"reference_arms": [], "n_resamples": 100},
    )
    config = load_config(path, ExperimentConfig)
    grader = get_model("scripted/judge", reply="GRADE: YES", memoize=False)
    report = run_experiment(config, grader=grader)
    assert "document/sft-4+pref" in report.trained
    pref = next(st for st in report.plan.stages if st.column == "sft-4+pref")
    counts = json.loads((pref.directory / "rlaif" / "rlaif_report.json").read_text())
    assert counts["pairs"] + counts["identical_answers"] == 3 and counts["pairs"] >= 1
    assert counts["judge_calls_made"] == counts["pairs"]  # one order: one call per judged prompt
    card = json.loads((pref.directory / "merged" / "run_card.json").read_text())
    assert card["stage"] == "pref" and card["n_pairs"] == counts["pairs"]
    results = json.loads(report.results_json.read_text())
    assert "sft-4+pref" in json.dumps(results["columns"])
    # a rerun trains, samples and judges nothing again
    again = run_experiment(load_config(path, ExperimentConfig), grader=grader)
    assert again.trained == [] and again.evaluated == []


def test_decay_curves_carry_the_pref_stage_at_the_end_of_its_sft_stage(tmp_path: Path) -> None:
    from caml_train.results import decay_coords

    path = _config(
        tmp_path,
        stage_hparams={"sft": {"max_steps": -1}},
        sft={"data": {"path": str(TINY / "sft.jsonl")}, "sizes": [4], "eval_every": 2},
    )
    coords, notes = decay_coords(plan(load_config(path, ExperimentConfig)))
    assert notes == []
    at = {(arm, column, line): x for arm, column, line, panel, x in coords if panel == "sft-4"}
    assert at[("document", "arm", "document")] == 0.0
    assert at[("document", "sft-4", "document")] == 4.0
    # the pref stages: their own lines, at the SFT samples of their parent
    assert at[("document", "sft-4+pref-2", "document pref-2")] == 4.0
    assert at[("document_replay", "sft-4+pref-4", "document_replay pref-4")] == 4.0
    assert not [c for c in coords if c[1].startswith("pref")]  # nothing after the arm stage
