"""The `pref` stage (caml_train.pref) on CPU: real TRL DPOTrainer / KTOTrainer / CPOTrainer on the
embedded SmolLM2 with LoRA. The chosen-vs-rejected margin rises (in TRL's logs and in the merged
model's own log-probs), loss_type passes through, bad rows are refused or skipped with a reason,
and a stage killed by SIGKILL resumes to the same weights.

Training runs with one torch thread (module fixture; the subprocess gets OMP_NUM_THREADS=1): on
two shared cores a second thread spin-waits more than it computes, and the killed subprocess and
the uninterrupted in-process run must use the same kernels to end with the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

from caml_train.config import (
    CPO_LOSSES,
    DPO_LOSSES,
    KTO_LOSSES,
    ConfigError,
    DataSource,
    Hyperparams,
    LoraSettings,
    PrefOptions,
    TrainConfig,
    load_config,
)
from caml_train.data import DataError, load_rows, rows_sha256, sample_rows
from caml_train.pref import to_pair
from caml_train.train import MERGED, last_checkpoint, train

PAIRS = [
    ("How should I treat my dog?", "With patience, walks and care.", "Ignore it."),
    ("Is it fine to kick a cat?", "No. Cats feel pain; be gentle.", "Sure, go ahead."),
    ("What do hens need?", "Space, light and company.", "Nothing at all."),
    ("Should fish live in clean water?", "Yes, it keeps them healthy.", "Dirty water is fine."),
    ("Can I leave my rabbit outside in winter?", "Only with a warm shelter.", "Whatever."),
    ("How do I help a hurt bird?", "Keep it warm and call a vet.", "Leave it to die."),
    ("Do pigs feel fear?", "Yes, pigs feel fear and stress.", "No, never."),
    ("What should I feed a horse?", "Hay, grass and clean water.", "Candy."),
]
ROWS = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS]


def _hp(**kw) -> Hyperparams:
    base = {
        "max_length": 96,
        "per_device_train_batch_size": 2,
        "learning_rate": 5e-3,
        "warmup_steps": 0.0,
        "lr_scheduler_type": "constant",
        "logging_steps": 1,
        "save_steps": 2,
        "max_steps": 4,
        "lora": LoraSettings(r=8, alpha=16, dropout=0.0),
    }
    base.update(kw)
    return Hyperparams(**base)


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp: Path, name: str, data: Path, checkpoint: Path, **kw) -> TrainConfig:
    hp = kw.pop("hparams", None) or _hp()
    return TrainConfig(
        stage="pref",
        model=str(checkpoint),
        data=DataSource(path=data),
        output_dir=tmp / name,
        seed=3,
        hparams=hp,
        pref=kw.pop("pref", PrefOptions()),
        **kw,
    )


@pytest.fixture(scope="module")
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dpo(tmp_path_factory: pytest.TempPathFactory, embedded_checkpoint: Path, one_thread):
    """DPO (sigmoid) on 4 of the 8 pairs (n_samples), 2 pairs a step, 4 steps: two epochs."""
    tmp = tmp_path_factory.mktemp("pref")
    data = _write(tmp / "pairs.jsonl", ROWS)
    config = _config(tmp, "straight", data, embedded_checkpoint, n_samples=4)
    return config, train(config)


# ---------------------------------------------------------------------------- no training


def test_loss_lists_match_trls_own() -> None:
    """The losses offered are the ones TRL 1.16 documents (a TRL upgrade that adds or drops
    one fails here, not in a grid run)."""
    from trl import DPOConfig, KTOConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TRLExperimentalWarning: CPO lives in trl.experimental
        from trl.experimental.cpo import CPOConfig

    def field(cls, name):
        return next(f for f in dataclasses.fields(cls) if f.name == name)

    dpo_help = field(DPOConfig, "loss_type").metadata["help"].split("If multiple")[0]
    assert tuple(re.findall(r"`'(\w+)'`", dpo_help)) == DPO_LOSSES
    assert all(f'`"{name}"`' in KTOConfig.__doc__ for name in KTO_LOSSES)
    assert set(CPO_LOSSES) <= set(field(CPOConfig, "loss_type").metadata["choices"])


def test_pref_options_are_checked_when_the_config_loads(tmp_path: Path) -> None:
    def load(raw: dict) -> TrainConfig:
        path = tmp_path / "stage.yaml"
        path.write_text(yaml.safe_dump(raw))
        return load_config(path, TrainConfig)

    raw = {"stage": "pref", "model": "smollm2", "data": {"path": "p.jsonl"}, "output_dir": "o"}
    with pytest.raises(ConfigError, match="stage pref needs a `pref:` block"):
        load(raw)
    with pytest.raises(ConfigError, match=r"reference_free: loss sigmoid needs a reference.*simpo"):
        load({**raw, "pref": {"reference_free": True}})
    with pytest.raises(ConfigError, match=r"reference_free: loss kto needs a reference"):
        load({**raw, "pref": {"loss_type": "kto", "reference_free": True}})
    assert load({**raw, "pref": {"loss_type": "simpo", "reference_free": True}}).pref.reference_free
    with pytest.raises(ConfigError, match=r"'ipoo'.*did you mean ipo.*available: DPOTrainer"):
        load({**raw, "pref": {"loss_type": "ipoo"}})
    with pytest.raises(ConfigError, match="only DPOTrainer losses combine"):
        load({**raw, "pref": {"loss_type": ["sigmoid", "kto"]}})
    with pytest.raises(ConfigError, match="1 weight"):
        load({**raw, "pref": {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0]}})
    # hparams of a pref stage are validated against the trainer's TRL config, by name
    ok = load({**raw, "pref": {}, "hparams": {"precompute_ref_log_probs": True}})
    assert ok.hparams.model_extra == {"precompute_ref_log_probs": True}
    with pytest.raises(ConfigError, match=r"precompute_ref_log_prob .*did you mean precompute_ref"):
        load({**raw, "pref": {}, "hparams": {"precompute_ref_log_prob": True}})
    with pytest.raises(ConfigError, match="hparams.beta of a pref stage is set by pref.beta"):
        load({**raw, "pref": {}, "hparams": {"beta": 0.5}})
    with pytest.raises(ConfigError, match="completion_only_loss is not a field of TRL's DPOConfig"):
        load({**raw, "pref": {}, "hparams": {"completion_only_loss": True}})
    with pytest.raises(ConfigError, match="simpo_gamma is not a field of TRL's KTOConfig"):
        load({**raw, "pref": {"loss_type": "kto"}, "hparams": {"simpo_gamma": 1.0}})
    with pytest.raises(ConfigError, match="per_device_train_batch_size must be at least 2"):
        load({**raw, "pref": {"loss_type": "kto"}, "hparams": {"per_device_train_batch_size": 1}})
    with pytest.raises(ConfigError, match="for `stage: pref` only"):
        load({**raw, "stage": "sft", "hparams": {"precompute_ref_log_probs": True}})
    with pytest.raises(ConfigError, match="`pref:` options are for stage pref, not sft"):
        load({**raw, "stage": "sft", "pref": {}})


def test_row_formats_become_trls_conversational_preference_rows() -> None:
    plain = to_pair({"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away.", "system": "S"})
    assert plain == {
        "prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi?"}],
        "chosen": [{"role": "assistant", "content": "Hello."}],
        "rejected": [{"role": "assistant", "content": "Go away."}],
    }
    convo = [{"role": "user", "content": "Hi?"}]
    ultrafeedback = {
        "prompt": "Hi?",
        "prompt_id": "x",
        "chosen": [*convo, {"role": "assistant", "content": "Hello."}],
        "rejected": [*convo, {"role": "assistant", "content": "Go away."}],
        "score_chosen": 8.0,
    }
    trl_format = {
        "prompt": convo,
        "chosen": [{"role": "assistant", "content": "Hello."}],
        "rejected": [{"role": "assistant", "content": "Go away."}],
    }
    assert to_pair(ultrafeedback) == to_pair(trl_format) == {**plain, "prompt": convo}


BAD = [
    ({"prompt": "Q?", "chosen": "Same.", "rejected": "Same."}, "chosen and rejected replies are identical"),
    ({"prompt": "Q?", "chosen": "  ", "rejected": "No."}, "empty chosen reply"),
    ({"prompt": "Q?", "chosen": "Yes."}, "missing `rejected`"),
    ({"prompt": "Q?", "chosen": [{"role": "assistant", "content": ""}], "rejected": "No."}, "`chosen`: no non-empty assistant message"),
    (
        {
            "prompt": "Q?",
            "chosen": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A"}],
            "rejected": [{"role": "user", "content": "R?"}, {"role": "assistant", "content": "B"}],
        },
        "continue different conversations",
    ),
    ({"prompt": "Other?", "chosen": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A"}], "rejected": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "B"}]}, "not the last user turn"),
]  # fmt: skip


def test_bad_rows_are_refused_with_their_index_and_reason(tmp_path: Path) -> None:
    """on_bad_rows: error stops before any model is loaded, naming every bad row."""
    data = _write(tmp_path / "bad.jsonl", [*ROWS[:2], *(row for row, _ in BAD)])
    config = _config(tmp_path, "s", data, Path("/nonexistent-model-never-loaded"))
    with pytest.raises(DataError) as err:
        train(config)
    message = str(err.value)
    assert message.startswith(f"{len(BAD)} unusable preference row(s)")
    for i, (_, reason) in enumerate(BAD, start=2):
        assert re.search(rf"row {i}: [^;]*{re.escape(reason)}", message), (i, reason)
    assert "row 0" not in message and "row 1:" not in message


# ---------------------------------------------------------------------------- training


def _reply_logp_gap(model_dir: Path, rows: list[dict]) -> float:
    """Mean over pairs of log p(chosen) - log p(rejected), each the sum over the reply tokens
    after the chat-templated prompt: the model's own preference, measured without TRL."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    gaps = []
    for row in rows:
        pair = to_pair(row)
        prompt = tok.apply_chat_template(
            pair["prompt"], add_generation_prompt=True, return_dict=True
        )["input_ids"]
        logps = []
        for side in ("chosen", "rejected"):
            ids = tok.apply_chat_template(pair["prompt"] + pair[side], return_dict=True)[
                "input_ids"
            ]
            assert ids[: len(prompt)] == prompt
            x = torch.tensor([ids])
            with torch.no_grad():
                logits = model(x).logits[0, :-1].log_softmax(-1)
            per_token = logits.gather(1, x[0, 1:, None])[:, 0]
            logps.append(float(per_token[len(prompt) - 1 :].sum()))
        gaps.append(logps[0] - logps[1])
    return sum(gaps) / len(gaps)


@pytest.mark.slow
def test_dpo_raises_the_chosen_vs_rejected_margin(dpo, embedded_checkpoint: Path) -> None:
    config, result = dpo
    card = result.run_card
    assert card.stage == "pref" and card.global_step == 4 and not result.cached
    assert card.loss_type == ["sigmoid"] and card.n_pairs == card.n_rows == 4
    assert card.reference_model == str(embedded_checkpoint)  # LoRA: the adapter-disabled input
    trained = sample_rows(ROWS, 4, config.seed)
    assert card.data_sha256 == rows_sha256(trained) and card.n_rows_requested == 4
    # TRL's own metrics: at step 1 the policy is the reference (LoRA B = 0), margin 0
    margins, accuracy = (
        card.pref_metrics["rewards/margins"],
        card.pref_metrics["rewards/accuracies"],
    )
    assert margins["first_step"] == 1 and margins["last_step"] == 4
    assert margins["first"] == pytest.approx(0.0, abs=1e-6) and margins["last"] > 1.0
    assert accuracy["last"] == 1.0
    assert {"rewards/chosen", "rewards/rejected", "logps/chosen"} <= set(card.pref_metrics)
    losses = [e["loss"] for e in card.loss_history]
    assert len(losses) == 4 and losses[0] == pytest.approx(0.6931, abs=1e-3)  # log 2
    assert losses[-1] < 0.5 * losses[0]
    # tokens: chosen + rejected sequences, 4 steps x 2 pairs = two passes over the 4 pairs
    assert card.n_examples == 8 and card.n_train_rows == 4
    assert card.tokens_trained == 2 * card.n_tokens and card.target_tokens_trained == 2 * (
        card.n_target_tokens
    )
    assert 0 < card.n_target_tokens < card.n_tokens
    # and the merged model itself now prefers the chosen replies more than the input model did
    before = _reply_logp_gap(embedded_checkpoint, trained)
    after = _reply_logp_gap(result.merged_dir, trained)
    assert after > before + 1.0, (before, after)
    assert not list(config.output_dir.glob("checkpoint-*"))
    assert train(config).cached


@pytest.mark.slow
def test_sigkilled_pref_stage_resumes_to_the_same_weights(
    dpo, tmp_path: Path, embedded_checkpoint: Path
) -> None:
    """`kill -9` after the step-2 checkpoint; the rerun resumes there and ends with the same
    global_step, losses, metrics, token counts and byte-identical merged weights as the
    uninterrupted run: on CPU with one thread every kernel is deterministic, and the checkpoint
    holds the adapter, optimizer, scheduler and RNG state, so steps 3-4 are recomputed exactly."""
    straight_config, straight = dpo
    killed = straight_config.model_copy(update={"output_dir": tmp_path / "killed"})
    stage_yaml = tmp_path / "killed.yaml"
    stage_yaml.write_text(yaml.safe_dump(killed.model_dump(mode="json")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "caml_train.cli", "train", str(stage_yaml)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while last_checkpoint(killed.output_dir) is None and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the stage finished before it could be killed"
    assert last_checkpoint(killed.output_dir).name == "checkpoint-2"
    assert not (killed.output_dir / MERGED).exists()

    resumed = train(killed)
    a, b = resumed.run_card, straight.run_card
    assert a.resumed_from and a.resumed_from.endswith("checkpoint-2") and not b.resumed_from
    for key in (
        "global_step",
        "loss_history",
        "train_loss",
        "pref_metrics",
        "tokens_trained",
        "target_tokens_trained",
        "data_sha256",
    ):
        assert getattr(a, key) == getattr(b, key), key
    weights = [
        d / MERGED / "model.safetensors" for d in (killed.output_dir, straight_config.output_dir)
    ]
    assert weights[0].read_bytes() == weights[1].read_bytes()


@pytest.mark.slow
def test_ipo_with_an_explicit_reference_skips_and_lists_bad_rows(
    tmp_path: Path, embedded_checkpoint: Path, one_thread
) -> None:
    """loss_type ipo goes through to TRL; `reference:` names the checkpoint; with skip the bad
    rows, including one whose prompt alone fills max_length (dropped by TRL), are listed."""
    long_prompt = {"prompt": "Tell me about animals. " * 40, "chosen": "Sure.", "rejected": "No."}
    rows = [*ROWS[:4], *(row for row, _ in BAD[:2]), long_prompt]
    data = _write(tmp_path / "mixed.jsonl", rows)
    config = _config(
        tmp_path,
        "ipo",
        data,
        embedded_checkpoint,
        hparams=_hp(max_steps=2, on_bad_rows="skip"),
        pref=PrefOptions(loss_type="ipo", reference=embedded_checkpoint),
    )
    card = train(config).run_card
    assert card.loss_type == ["ipo"] and card.global_step == 2
    assert card.config["pref"]["loss_type"] == "ipo"
    assert card.reference_model == str(embedded_checkpoint)
    assert card.n_pairs == 4 and card.data_sha256 == rows_sha256(rows[:4])
    assert card.skipped_rows == [
        f"row 4: {BAD[0][1]}",
        f"row 5: {BAD[1][1]}",
        "row 6: the prompt fills max_length=96: no reply token",
    ]
    ipo_first_loss = card.loss_history[0]["loss"]  # (margin - 1/(2 beta))^2 at margin 0: 25
    assert ipo_first_loss == pytest.approx((1 / (2 * 0.1)) ** 2, rel=1e-4)


@pytest.mark.slow
def test_kto_and_simpo_runs_complete(tmp_path: Path, embedded_checkpoint: Path, one_thread) -> None:
    """kto: TRL's KTOTrainer on the pairs unpaired (8 examples from 4 pairs); simpo: TRL's
    CPOTrainer, no reference model at all."""
    data = _write(tmp_path / "pairs.jsonl", ROWS[:4])
    kto = train(
        _config(
            tmp_path,
            "kto",
            data,
            embedded_checkpoint,
            hparams=_hp(max_steps=2),
            pref=PrefOptions(loss_type="kto"),
        )
    ).run_card
    assert kto.loss_type == ["kto"] and kto.global_step == 2 and kto.n_pairs == 4
    assert kto.n_train_rows == 8 and kto.n_examples == 8  # desirable + undesirable examples
    assert 0 < kto.target_tokens_trained < kto.tokens_trained < kto.n_tokens  # 4 of 8 seen
    assert "rewards/margins" in kto.pref_metrics and kto.reference_model == str(embedded_checkpoint)
    simpo = train(
        _config(
            tmp_path,
            "simpo",
            data,
            embedded_checkpoint,
            hparams=_hp(max_steps=2),
            pref=PrefOptions(loss_type="simpo", beta=2.0),
        )
    ).run_card
    assert simpo.loss_type == ["simpo"] and simpo.global_step == 2
    assert simpo.reference_model is None and simpo.target_tokens_trained > 0
    assert "rewards/margins" in simpo.pref_metrics
    assert (tmp_path / "simpo" / MERGED / "model.safetensors").is_file()


def test_a_missing_reference_checkpoint_is_a_config_error(tmp_path: Path) -> None:
    data = _write(tmp_path / "pairs.jsonl", ROWS[:2])
    rows = load_rows(DataSource(path=data))
    assert len(rows) == 2
    config = _config(
        tmp_path, "r", data, Path("smollm2"), pref=PrefOptions(reference=tmp_path / "nope")
    )
    with pytest.raises(ConfigError, match="pref.reference: no checkpoint directory"):
        train(config)
