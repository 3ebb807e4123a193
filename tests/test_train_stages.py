"""caml_train.train on CPU: the loss falls, a killed stage resumes to the same result, the merged
checkpoint carries a run card and is scored by Inspect as `caml/<path>`.

One trained checkpoint is shared by the module (training is the slow part on 2 CPU cores).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from caml_train.cli import main
from caml_train.config import DataSource, Hyperparams, LoraSettings, TrainConfig
from caml_train.data import load_rows, rows_sha256
from caml_train.train import MERGED, last_checkpoint, train

pytestmark = pytest.mark.slow
TINY = Path(__file__).resolve().parents[1] / "examples" / "tiny"


def _hp(**kw) -> Hyperparams:
    base = {
        "max_length": 128,
        "per_device_train_batch_size": 2,
        "learning_rate": 3e-3,
        "warmup_steps": 0.0,
        "lr_scheduler_type": "constant",
        "logging_steps": 1,
        "save_steps": 100,
        "lora": LoraSettings(r=8, alpha=16, dropout=0.0),
    }
    base.update(kw)
    return Hyperparams(**base)


@pytest.fixture(scope="module")
def overfit(tmp_path_factory: pytest.TempPathFactory, embedded_checkpoint: Path):
    """Six steps on two documents (one packed row = one batch): every step sees the same data."""
    tmp = tmp_path_factory.mktemp("overfit")
    corpus = tmp / "two.jsonl"
    rows = load_rows(DataSource(path=TINY / "documents.jsonl"))[:2]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = TrainConfig(
        stage="text",
        model=str(embedded_checkpoint),
        data=DataSource(path=corpus),
        output_dir=tmp / "stage",
        seed=1,
        hparams=_hp(max_steps=6, per_device_train_batch_size=1),
    )
    return config, rows, train(config)


def test_loss_falls_when_overfitting_a_tiny_corpus(overfit) -> None:
    _, _, result = overfit
    losses = [e["loss"] for e in result.run_card.loss_history]
    assert len(losses) == 6
    assert losses[-1] < 0.75 * losses[0], losses
    assert sum(losses[-2:]) < sum(losses[:2])


def test_merged_checkpoint_and_run_card(
    overfit, embedded_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    import torch
    from safetensors.torch import load_file

    config, rows, result = overfit
    merged = result.merged_dir
    assert merged == config.output_dir / MERGED and not result.cached
    assert {"config.json", "model.safetensors", "tokenizer.json", "run_card.json"} <= {
        p.name for p in merged.iterdir()
    }
    assert not list(config.output_dir.glob("checkpoint-*"))  # cleaned once merged
    card = json.loads((merged / "run_card.json").read_text())
    assert (
        card["data_sha256"] == rows_sha256(rows) and card["seed"] == 1 and card["global_step"] == 6
    )
    assert card["config"]["hparams"]["lora"]["r"] == 8 and card["stage"] == "text"
    assert (
        card["packages"]["transformers"] != "not installed"
        and card["packages"]["peft"] != "not installed"
    )
    assert (
        card["n_rows"] == 2
        and card["n_train_rows"] == 1
        and card["packing_strategy"] == "bfd_split"
    )
    # one packed row per step, every step: the tokens trained are six passes over the corpus
    assert card["tokens_trained"] == 6 * card["n_tokens"]
    assert card["target_tokens_trained"] == 6 * card["n_target_tokens"] > 0
    assert card["packages"]["trl"] != "not installed"
    # LoRA was folded into the weights: attention projections changed, nothing else did.
    new, old = (
        load_file(merged / "model.safetensors"),
        load_file(embedded_checkpoint / "model.safetensors"),
    )
    assert not any("lora" in k for k in new)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(new[q], old[q])
    assert torch.equal(
        new["model.layers.0.mlp.up_proj.weight"], old["model.layers.0.mlp.up_proj.weight"]
    )
    # a second call is a cache hit, not a retrain (also through the CLI and its YAML)
    again = train(config)
    assert again.cached and again.run_card.finished_at == result.run_card.finished_at
    yaml_path = config.output_dir.parent / "stage.yaml"
    yaml_path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert main(["train", str(yaml_path)]) == 0
    assert capsys.readouterr().out.startswith(f"cached: {merged}")


def test_merged_checkpoint_is_scored_by_inspect_as_caml_path(overfit, tmp_path: Path) -> None:
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import get_model
    from inspect_ai.scorer import includes
    from inspect_ai.solver import generate

    merged = overfit[2].merged_dir
    task = Task(
        dataset=[Sample(input="Name one farm animal.", target="pig")],
        solver=generate(),
        scorer=includes(),
    )
    model = get_model(f"caml/{merged}", memoize=False)
    assert model.api.checkpoint_path == merged
    (log,) = eval(task, model=model, log_dir=str(tmp_path), display="none", max_tokens=6)
    assert log.status == "success", log.error
    assert log.eval.model == f"caml/{merged}"
    assert log.samples[0].output.completion.strip()
    assert log.samples[0].scores  # scored (correct or not)


def test_merged_checkpoint_is_scored_by_the_inspect_cli_as_hf_path(overfit, tmp_path: Path) -> None:
    """What the issue promises a lab: `inspect eval ... --model hf/<merged>` scores it directly."""
    import os
    import subprocess
    import sys

    merged = overfit[2].merged_dir
    task_file = tmp_path / "farm_task.py"
    task_file.write_text(
        "from inspect_ai import Task, task\n"
        "from inspect_ai.dataset import Sample\n"
        "from inspect_ai.scorer import includes\n"
        "from inspect_ai.solver import generate\n\n"
        "@task\n"
        "def farm():\n"
        "    return Task(dataset=[Sample(input='Name one farm animal.', target='pig')],\n"
        "                solver=generate(), scorer=includes())\n"
    )
    inspect = Path(sys.executable).with_name("inspect")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [
            str(inspect),
            "eval",
            task_file.name,
            "--model",
            f"hf/{merged}",
            "--max-tokens",
            "6",
            "--log-dir",
            str(tmp_path / "logs"),
            "--display",
            "plain",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    from inspect_ai.log import list_eval_logs, read_eval_log

    (info,) = list_eval_logs(str(tmp_path / "logs"))
    log = read_eval_log(info)
    assert log.status == "success" and log.eval.model == f"hf/{merged}"
    assert log.samples[0].output.completion.strip()


def test_a_stage_dir_of_another_config_is_refused_not_served(overfit) -> None:
    from caml_train.train import StaleStageError

    config = overfit[0]
    changed = config.model_copy(update={"hparams": _hp(max_steps=7, per_device_train_batch_size=1)})
    with pytest.raises(StaleStageError, match="different config"):
        train(changed)


class _Killed(Exception):
    pass


def _kill_after(step: int):
    from transformers import TrainerCallback

    class KillAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise _Killed(f"killed after saving step {step}")

    return KillAfterSave()


def test_killed_stage_resumes_from_last_checkpoint_to_the_same_result(
    tmp_path: Path, embedded_checkpoint: Path
) -> None:
    rows = load_rows(DataSource(path=TINY / "pairs.jsonl"))[:6]
    corpus = tmp_path / "pairs.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def config(out: str) -> TrainConfig:
        return TrainConfig(
            stage="instruct",
            model=str(embedded_checkpoint),
            data=DataSource(path=corpus),
            output_dir=tmp_path / out,
            seed=2,
            hparams=_hp(
                max_length=96, packing=False, max_steps=4, save_steps=2, learning_rate=1e-3
            ),
        )

    killed = config("killed")
    with pytest.raises(_Killed):
        train(killed, callbacks=[_kill_after(2)])
    assert last_checkpoint(killed.output_dir).name == "checkpoint-2"
    assert not (killed.output_dir / MERGED).exists()  # no card next to unfinished work
    from caml_train.train import StaleStageError

    other = killed.model_copy(update={"seed": 3})  # never resume another run's checkpoints
    with pytest.raises(StaleStageError, match="checkpoints of a different config"):
        train(other)

    resumed = train(killed)
    card = resumed.run_card
    assert card.resumed_from and card.resumed_from.endswith("checkpoint-2")
    assert card.global_step == 4

    straight = train(config("straight")).run_card
    assert [e["step"] for e in straight.loss_history] == [1, 2, 3, 4]
    # Same data order, optimiser and RNG state after the resume: the same losses at steps 3-4.
    after = {e["step"]: e["loss"] for e in card.loss_history}
    for e in straight.loss_history[2:]:
        assert after[e["step"]] == pytest.approx(e["loss"], rel=1e-4, abs=1e-4)
    # defect 10: the resumed card reports the whole run's mean loss and tokens, not the tail's
    assert card.train_loss == pytest.approx(straight.train_loss, rel=1e-5)
    assert card.tokens_trained == straight.tokens_trained > 0
    assert card.target_tokens_trained == straight.target_tokens_trained > 0


def _stage_yaml(tmp: Path, name: str, corpus: Path, checkpoint: Path, **hp) -> Path:
    config = TrainConfig(
        stage="text",
        model=str(checkpoint),
        data=DataSource(path=corpus),
        output_dir=tmp / name,
        seed=5,
        hparams=_hp(max_length=64, max_steps=4, save_steps=2, save_total_limit=None, **hp),
    )
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


def test_sigkilled_stage_resumes_to_byte_identical_weights_and_the_same_card(
    tmp_path: Path, embedded_checkpoint: Path
) -> None:
    """`kill -9` after the step-2 checkpoint, then the same command again: the merged weights
    equal an uninterrupted run's byte for byte, and so do its train_loss and token counts."""
    import os
    import signal
    import subprocess
    import sys
    import time

    rows = load_rows(DataSource(path=TINY / "documents.jsonl"))[:8]
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cli = [sys.executable, "-m", "caml_train.cli", "train"]
    killed = _stage_yaml(tmp_path, "killed", corpus, embedded_checkpoint)
    proc = subprocess.Popen([*cli, str(killed)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 900
    while last_checkpoint(tmp_path / "killed") is None and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the stage finished before it could be killed"
    assert not (tmp_path / "killed" / MERGED).exists()
    for name, path in (
        ("killed", killed),
        ("straight", _stage_yaml(tmp_path, "straight", corpus, embedded_checkpoint)),
    ):
        done = subprocess.run(
            [*cli, str(path)], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
    a, b = (tmp_path / n / MERGED for n in ("killed", "straight"))
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    ca, cb = (json.loads((d / "run_card.json").read_text()) for d in (a, b))
    assert ca["resumed_from"] and not cb["resumed_from"]
    for key in (
        "train_loss",
        "loss_history",
        "tokens_trained",
        "target_tokens_trained",
        "global_step",
    ):
        assert ca[key] == cb[key], key


def test_skip_policy_trains_past_broken_lines_and_lists_them(
    tmp_path: Path, embedded_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    """Defect 9 end to end: a broken JSON line stops `caml-train train` with one line (exit 2);
    with `on_bad_rows: skip` the stage trains and the run card lists the line."""
    rows = load_rows(DataSource(path=TINY / "documents.jsonl"))[:2]
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(json.dumps(rows[0]) + "\n{broken\n" + json.dumps(rows[1]) + "\n")
    path = _stage_yaml(tmp_path, "s", corpus, embedded_checkpoint)
    raw = yaml.safe_load(path.read_text())
    raw["hparams"]["max_steps"] = 1
    path.write_text(yaml.safe_dump(raw))
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "docs.jsonl line 2" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert main(["train", str(path), "--set", "hparams.on_bad_rows=skip"]) == 0
    card = json.loads((tmp_path / "s" / MERGED / "run_card.json").read_text())
    assert card["n_rows"] == 2 and card["skipped_rows"] == [
        "docs.jsonl line 2: not valid JSON (Expecting property name enclosed in double quotes)"
    ]
