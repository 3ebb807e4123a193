"""ONE trainer function for all three stages, on TRL's `SFTTrainer`: `text` (document-tuning),
`instruct`, `sft`.

TRL tokenises, renders chat templates with the assistant mask (`assistant_only_loss`), packs
with best-fit decreasing into padding-free batches (each sequence keeps its own positions, so
no token attends to another document) and wraps the model in LoRA from `peft_config`. What is
ours: the stage directory and its config check, resume from the latest complete checkpoint,
token accounting that survives a resume, the merged checkpoint and its run card. Output:

    <output_dir>/checkpoint-<step>/   Trainer checkpoints (resume points; deleted at the end
                                      unless hparams.keep_checkpoints)
    <output_dir>/merged/              merged full checkpoint + tokenizer + run_card.json,
                                      loadable by `caml/<path>` in Inspect and by from_pretrained

Resume: a killed stage (even by SIGKILL) restarts from its latest complete checkpoint-*; a
finished stage (merged run card present) is not retrained. Multi-GPU: launch `caml-train train`
under torchrun or `accelerate launch`; only the main process merges and writes.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, TrainConfig
from .data import (
    DataError,
    Exposure,
    Problems,
    Records,
    as_dataset,
    exposure,
    load_rows,
    replay_rows,
    rows_sha256,
    sample_rows,
    to_records,
    value_tokens,
)
from .runcard import ReplayRecord, RunCard, environment, now, read_run_card, write_run_card

log = logging.getLogger(__name__)
MERGED = "merged"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


class StaleStageError(ConfigError):
    """The output directory holds a stage trained (or started) with another config."""


STAGE_CONFIG = "stage_config.json"


def _check_resume_config(config: TrainConfig) -> None:
    """Refuse to resume checkpoints written by a different config (or to mix two runs' steps).

    The config is recorded in `<output_dir>/stage_config.json` when training starts; the grid's
    directories are content-addressed and always match, a hand-run `caml-train train` may not.
    """
    config.output_dir.mkdir(parents=True, exist_ok=True)
    path = config.output_dir / STAGE_CONFIG
    current = config.model_dump(mode="json")
    if path.is_file():
        recorded = json.loads(path.read_text(encoding="utf-8"))
        if recorded != current and last_checkpoint(config.output_dir) is not None:
            raise StaleStageError(
                f"{config.output_dir} holds checkpoints of a different config ({path}): "
                "use a new output_dir, or --force to start over"
            )
    path.write_text(json.dumps(current, indent=2, sort_keys=True), encoding="utf-8")


@dataclass
class StageResult:
    merged_dir: Path
    run_card: RunCard
    cached: bool


def resolve_base_model(spec: str) -> str:
    """`smollm2` -> the embedded checkpoint dir; an existing dir -> itself; else a Hub id."""
    from caml_evals.models.embedded import EMBEDDED_MODEL_NAME, ensure_embedded_checkpoint

    if spec.lower() in {"smollm2", "default", EMBEDDED_MODEL_NAME.lower()}:
        return str(ensure_embedded_checkpoint())
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if spec.startswith((".", "/", "~")):
        raise FileNotFoundError(f"model checkpoint directory not found: {spec}")
    return spec  # a Hub model id; from_pretrained downloads it (online runs only)


def last_checkpoint(output_dir: Path) -> Path | None:
    """Latest *complete* checkpoint-N (trainer_state.json is written after the weights)."""
    if not output_dir.is_dir():
        return None
    found = []
    for p in output_dir.iterdir():
        m = _CKPT.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").is_file():
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def _use_bf16(flag: bool | None) -> bool:
    import torch

    cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if flag and not cuda_bf16:
        log.warning("bf16 requested but no bf16-capable GPU: training in float32")
    return cuda_bf16 if flag is None else bool(flag and cuda_bf16)


def load_model_and_tokenizer(config: TrainConfig) -> tuple[Any, Any, str]:
    """The base model (plain: LoRA is applied by SFTTrainer from `peft_config`), tokenizer, path."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hp = config.hparams
    source = resolve_base_model(config.model)
    kw: dict[str, Any] = {"revision": config.model_revision} if config.model_revision else {}
    tokenizer = AutoTokenizer.from_pretrained(source, **kw)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if hp.attn_implementation:
        kw["attn_implementation"] = hp.attn_implementation
    # LoRA on a bf16 GPU: keep the frozen base in bf16 (half the memory); adapters stay fp32.
    dtype = torch.bfloat16 if (_use_bf16(hp.bf16) and hp.lora is not None) else torch.float32
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kw)
    model.config.use_cache = False  # training never needs a KV cache
    return model, tokenizer, source


def peft_config(config: TrainConfig) -> Any:
    """The LoRA settings as a peft `LoraConfig` for SFTTrainer (None: full fine-tuning)."""
    lora = config.hparams.lora
    if lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )


def checkpoint_dtype(source: str, revision: str | None = None) -> str:
    """The dtype the base checkpoint declares (the merged model is saved in it by default)."""
    from transformers import AutoConfig

    kw = {"revision": revision} if revision else {}
    dtype = getattr(AutoConfig.from_pretrained(source, **kw), "dtype", None)
    return str(dtype).removeprefix("torch.") if dtype is not None else "float32"


def sft_config(config: TrainConfig) -> Any:
    """TRL's SFTConfig for a stage: the hparams under their own names, plus what caml-train
    decides (directory, seed, stage-dependent loss and packing, checkpointing for resume)."""
    from trl import SFTConfig

    hp = config.hparams
    kw = hp.trl_fields()
    conversational = config.stage != "text"
    if kw["assistant_only_loss"] is None:
        kw["assistant_only_loss"] = conversational
    elif kw["assistant_only_loss"] and not conversational:
        raise ConfigError("hparams.assistant_only_loss is for instruct/sft stages, not documents")
    kw["packing_strategy"] = kw["packing_strategy"] or ("bfd" if conversational else "bfd_split")
    kw.setdefault("pad_to_multiple_of", None)
    return SFTConfig(
        output_dir=str(config.output_dir),
        seed=config.seed,
        data_seed=config.seed,
        dataset_text_field="text",
        **with_trainer_defaults(hp, kw),
    )


def with_trainer_defaults(hp: Any, kw: dict[str, Any]) -> dict[str, Any]:
    """What caml-train sets on every TRL trainer config (SFT and preference): bf16 from the
    hardware, non-reentrant activation checkpointing, checkpoints by steps, no reporting, CPU
    when there is no GPU. Values already in `kw` (the hparams) win."""
    import torch

    kw["bf16"] = _use_bf16(hp.bf16)
    if kw.get("activation_checkpointing"):
        kw.setdefault("activation_checkpointing_kwargs", {"use_reentrant": False})
    defaults = {
        "logging_first_step": True,
        "save_strategy": "steps",
        "report_to": "none",
        "dataloader_num_workers": 0,
        "disable_tqdm": not sys.stderr.isatty(),
        "use_cpu": not torch.cuda.is_available(),
        "ddp_find_unused_parameters": False if hp.lora is not None else None,
    }
    for key, value in defaults.items():
        kw.setdefault(key, value)
    return kw


class _LogAtSaveAndEnd:
    """Log at every checkpoint and at the last step, so the loss history in a checkpoint covers
    every step before it: a resumed run's train_loss is then the mean over all its steps, the
    same number as an uninterrupted run's (transformers' own is the post-resume mean only)."""

    def __new__(cls) -> Any:
        from transformers import TrainerCallback

        class LogAtSaveAndEnd(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if control.should_save or state.global_step >= state.max_steps:
                    control.should_log = True
                return control

        return LogAtSaveAndEnd()


TOKEN_STATE = "CamlTokenCounter"


class TokenCounts:
    """What every counting trainer (SFT here, DPO/KTO/CPO in `pref`) shares: running totals of
    the tokens and loss-bearing tokens trained on, all processes together, kept in each
    checkpoint (`keep_counts`) and read back on resume (`_restore_counts`). Mixed in before the
    TRL trainer class, so it needs no import here."""

    caml_tokens = 0
    caml_targets = 0

    def caml_count(self, tokens: int, targets: int) -> None:
        processes = self.accelerator.num_processes  # type: ignore[attr-defined]
        self.caml_tokens += tokens * processes
        self.caml_targets += targets * processes

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        keep_counts(self)
        super()._save_checkpoint(model, trial)  # type: ignore[misc]


def _counting_trainer_class() -> Any:
    """SFTTrainer that counts the tokens and loss-bearing tokens of every batch it trains on.

    The counts are kept in the trainer state's `stateful_callbacks` (written atomically with each
    checkpoint's trainer_state.json) and read back on resume, so they are the run's totals.
    """
    from trl import SFTTrainer

    class CountingSFTTrainer(TokenCounts, SFTTrainer):
        caml_slots = 0  # token positions computed, padding included (not kept across resume)

        def __init__(self, *args, replay: tuple[Any, str, int] | None = None, **kwargs):
            # replay: (documents dataset, their packing strategy, mixing seed), prepared by
            # TRL beside the train dataset (see _prepare_dataset)
            self.caml_replay = replay
            self.caml_replay_exposure: Exposure | None = None
            super().__init__(*args, **kwargs)

        def _prepare_dataset(self, dataset, processing_class, args, packing, fmt, name):
            """TRL's preparation; with replay, the documents are prepared by the same code as a
            text stage's (every token a target, its own overflow rule: split, never cut) and
            the two prepared datasets are concatenated and shuffled. One BFD pass over both
            would force one overflow rule on both: cut documents, or split conversations."""
            prepared = super()._prepare_dataset(dataset, processing_class, args, packing, fmt, name)
            if self.caml_replay is None or name != "train":
                return prepared
            import copy

            import datasets

            documents, strategy, seed = self.caml_replay
            doc_args = copy.copy(args)
            doc_args.packing_strategy, doc_args.assistant_only_loss = strategy, False
            docs = super()._prepare_dataset(
                documents, processing_class, doc_args, packing, fmt, "replay"
            )
            cols = [c for c in ("input_ids", "labels", "seq_lengths") if c in prepared.column_names]
            conversations = prepared.select_columns(cols)
            docs = docs.select_columns(cols).cast(conversations.features)
            self.caml_replay_exposure = exposure(docs)
            return datasets.concatenate_datasets([conversations, docs]).shuffle(seed=seed)

        def training_step(self, model, inputs, *args, **kwargs):
            labels = inputs.get("labels")
            self.caml_slots += int(inputs["input_ids"].numel())
            if labels is not None:
                if "attention_mask" in inputs:
                    tokens = int(inputs["attention_mask"].sum())
                else:  # padding-free: one row, first token of each sequence already masked
                    tokens = int(labels.numel())
                self.caml_count(tokens, int((labels[:, 1:] != -100).sum()))
            return super().training_step(model, inputs, *args, **kwargs)

    return CountingSFTTrainer


def keep_counts(trainer: Any) -> None:
    """Put the running token counts in the trainer state, so the checkpoint about to be saved
    holds them (read back by `_restore_counts` on resume). Every counting trainer calls it."""
    trainer.state.stateful_callbacks[TOKEN_STATE] = {
        "args": {},
        "attributes": {"tokens": trainer.caml_tokens, "targets": trainer.caml_targets},
    }


def _restore_counts(trainer: Any, checkpoint: Path) -> None:
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    attrs = (state.get("stateful_callbacks") or {}).get(TOKEN_STATE, {}).get("attributes", {})
    trainer.caml_tokens = int(attrs.get("tokens", 0))
    trainer.caml_targets = int(attrs.get("targets", 0))


def mean_train_loss(log_history: list[dict[str, Any]]) -> float | None:
    """Mean per-step loss over the whole run from the logged losses (each the mean of the steps
    since the previous log), weighted by the steps each covers."""
    total, last = 0.0, 0
    for entry in log_history:
        if "loss" in entry and "step" in entry:
            step = int(entry["step"])
            total += float(entry["loss"]) * (step - last)
            last = step
    return total / last if last else None


@dataclass
class StageTrainer:
    """A stage ready to train: the SFTTrainer (dataset prepared by TRL) and where rows went."""

    trainer: Any
    records: Any
    rows: list[dict[str, Any]]
    problems: Problems
    tokenizer: Any
    source: str
    original_chat_template: str | None
    replay: ReplayPart | None = None


@dataclass
class ReplayPart:
    """The documents an SFT stage replays (`config.replay`) and what TRL made of them."""

    rows: list[dict[str, Any]]  # the sampled documents, in their sampled order
    records: Records
    seed: int
    # one pass over the prepared documents (a part of the stage's own exposure)
    exposure: Exposure = field(default_factory=Exposure)


def _replay_part(config: TrainConfig, n_rows: int, problems: Problems) -> ReplayPart:
    """The replayed documents beside `n_rows` SFT rows, validated like a text stage's rows
    (bad ones raise, or are skipped and listed as `replay document ...`)."""
    assert config.replay is not None
    replay, policy = config.replay, config.hparams.on_bad_rows
    seed = config.seed if replay.seed is None else replay.seed
    found = Problems()
    rows = replay_rows(replay, n_rows, seed, found if policy == "skip" else None)
    try:
        records = to_records(rows, "text", policy, found)
    except DataError as ex:
        raise DataError(f"replay documents {replay.documents.describe()}: {ex}") from None
    problems.items.extend(f"replay document {item}" for item in found.items)
    return ReplayPart(rows, records, seed)


def stage_rows(config: TrainConfig) -> tuple[list[dict[str, Any]], Problems]:
    """The stage's input rows (`config.data`, sampled to `n_samples` with the stage's seed) and
    the problems met reading them (kept with on_bad_rows=skip, else raised)."""
    problems = Problems()
    rows = load_rows(config.data, problems if config.hparams.on_bad_rows == "skip" else None)
    return sample_rows(rows, config.n_samples, config.seed), problems


def seeded_base_model(config: TrainConfig, model: Any, tokenizer: Any) -> tuple[Any, Any, str]:
    """(model, tokenizer, source) to train: the one given (tests share one) or `config.model`,
    loaded after seeding, so the LoRA weights are initialised from the stage's seed."""
    from transformers import set_seed

    set_seed(config.seed)
    if model is None:
        return load_model_and_tokenizer(config)
    return model, tokenizer, str(config.model)


def build_trainer(
    config: TrainConfig,
    *,
    callbacks: list[Any] | None = None,
    model: Any = None,
    tokenizer: Any = None,
) -> StageTrainer:
    """Rows -> records -> SFTTrainer with TRL's prepared (tokenised, packed) dataset.

    With `config.replay`, the arm's documents are prepared beside the rows by the same TRL code
    (as a text stage's) and the two prepared datasets are mixed (`_prepare_dataset` above).

    `model`/`tokenizer`: an already loaded base (tests share one); by default loaded from
    `config.model`. Nothing is trained or written here.
    """

    hp = config.hparams
    args = sft_config(config)  # config errors before anything loads
    rows, problems = stage_rows(config)
    records = to_records(rows, config.stage, hp.on_bad_rows, problems)
    replay = _replay_part(config, records.rows_used, problems) if config.replay else None
    model, tokenizer, source = seeded_base_model(config, model, tokenizer)
    original_template = tokenizer.chat_template
    if args.assistant_only_loss and not (hp.model_extra or {}).get("chat_template_path"):
        from .chat_templates import training_chat_template

        template = training_chat_template(tokenizer)
        if template is not None:
            tokenizer.chat_template = template
    trainer = _counting_trainer_class()(
        model=model,
        args=args,
        train_dataset=as_dataset(records),
        processing_class=tokenizer,
        peft_config=peft_config(config),
        callbacks=[_LogAtSaveAndEnd(), *(callbacks or [])],
        # documents keep a text stage's packing (split, never cut) unless one is configured
        replay=None
        if replay is None
        else (as_dataset(replay.records), hp.packing_strategy or "bfd_split", replay.seed),
    )
    if replay is not None:
        assert trainer.caml_replay_exposure is not None  # set when TRL prepared the dataset
        replay.exposure = trainer.caml_replay_exposure
        log.info(
            "replay: %d documents beside %d rows (%d target tokens per pass)",
            replay.records.rows_used,
            records.rows_used,
            replay.exposure.target_tokens,
        )
    return StageTrainer(
        trainer, records, rows, problems, tokenizer, source, original_template, replay
    )


def train(
    config: TrainConfig,
    *,
    callbacks: list[Any] | None = None,
    stage_key: str | None = None,
    force: bool = False,
) -> StageResult:
    """Train one stage, resuming from its latest checkpoint, and write the merged checkpoint.

    Returns at once (cached=True) when the stage's merged run card already exists. A `pref`
    stage is trained by `caml_train.pref.train_pref` (TRL's preference trainers).
    """
    if config.stage == "pref":
        from .pref import train_pref

        return train_pref(config, callbacks=callbacks, stage_key=stage_key, force=force)
    cached = cached_stage(config, force)
    if cached is not None:
        return cached
    merged_dir = config.output_dir / MERGED

    hp = config.hparams
    started = now()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    st = build_trainer(config, callbacks=callbacks)
    trainer, records, rows, problems = st.trainer, st.records, st.rows, st.problems
    args, tokenizer, source = trainer.args, st.tokenizer, st.source
    seen = exposure(trainer.train_dataset)
    n_replay = st.replay.records.rows_used if st.replay else 0
    _check_targets(seen, records.rows_used + n_replay, args, problems, hp.on_bad_rows)
    log.info(
        "stage %s: %d rows -> %d sequences in %d training rows (%d tokens, %d targets)",
        config.stage,
        records.rows_used,
        seen.sequences,
        seen.rows,
        seen.tokens,
        seen.target_tokens,
    )
    if config.target_token_budget is not None:
        _apply_budget(trainer, config.target_token_budget, seen)
    resume = train_from_last_checkpoint(trainer, config)
    n_value = None
    if config.value_keywords is not None:
        n_value = value_tokens(records, tokenizer, config.value_keywords)
        if st.replay is not None:  # the documents are trained on too
            n_value += value_tokens(st.replay.records, tokenizer, config.value_keywords)
    card = RunCard(
        **trained_card_fields(
            trainer,
            config,
            seen,
            n_value,
            stage_key=stage_key,
            resume=resume,
            started=started,
        ),
        base_model=source,
        data_sha256=rows_sha256([rows[i] for i in records.used_indices]),
        n_rows=records.rows_used,
        packing_strategy=args.packing_strategy if args.packing else None,
        target_token_budget=config.target_token_budget,
        skipped_rows=problems.items,
        replay=_replay_record(config, st.replay, records.rows_used, passes_trained(trainer, seen)),
    )
    tokenizer.chat_template = st.original_chat_template  # the merged model keeps its own
    finish_stage(trainer, config, source, tokenizer, card)
    return StageResult(merged_dir, card, cached=False)


def train_from_last_checkpoint(trainer: Any, config: TrainConfig) -> Path | None:
    """`trainer.train()`, resumed from the stage's latest checkpoint (token counts restored)
    when there is one; returns that checkpoint. Shared by every stage's trainer."""
    resume = last_checkpoint(config.output_dir)
    if resume is not None:
        log.info("resuming %s from %s", config.output_dir, resume.name)
        _restore_counts(trainer, resume)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    log.info("stage %s trained in %.1fs", config.stage, time.perf_counter() - t0)
    return resume


def passes_trained(trainer: Any, seen: Any) -> float:
    """Passes over the stage's target tokens the trainer made (0 when it has none)."""
    return trainer.caml_targets / seen.target_tokens if seen.target_tokens else 0.0


def trained_card_fields(
    trainer: Any,
    config: TrainConfig,
    seen: Any,
    n_value: int | None,
    *,
    stage_key: str | None,
    resume: Path | None,
    started: str,
) -> dict[str, Any]:
    """The run-card fields every trained stage fills the same way: its config and data source,
    the exposure `seen` (sequences, rows, tokens, target tokens), the tokens the trainer
    counted (and of them, from `n_value` value-keyword tokens per pass, the value tokens), its
    steps and losses, the checkpoint it resumed from, timing and environment."""
    history = trainer.state.log_history
    return {
        "stage": config.stage,
        "stage_key": stage_key,
        "config": config.model_dump(mode="json"),
        "data_source": config.data.describe(),
        "n_rows_requested": config.n_samples,
        "n_examples": seen.sequences,
        "n_train_rows": seen.rows,
        "n_tokens": seen.tokens,
        "n_target_tokens": seen.target_tokens,
        "tokens_trained": trainer.caml_tokens,
        "target_tokens_trained": trainer.caml_targets,
        "n_value_tokens": n_value,
        "value_tokens_trained": (
            None if n_value is None else round(n_value * passes_trained(trainer, seen))
        ),
        "seed": config.seed,
        "global_step": trainer.state.global_step,
        "train_loss": mean_train_loss(history),
        "loss_history": [
            {"step": float(e["step"]), "loss": float(e["loss"])} for e in history if "loss" in e
        ],
        "resumed_from": str(resume) if resume else None,
        "started_at": started,
        "finished_at": now(),
        **environment(),
    }


def cached_stage(config: TrainConfig, force: bool) -> StageResult | None:
    """The finished stage (its merged run card, for this config), or None: ready to train.

    `force` clears the merged model and every resume point; checkpoints of another config are
    refused (`_check_resume_config`). Shared by every stage's trainer.
    """
    merged_dir = config.output_dir / MERGED
    card = read_run_card(merged_dir)
    if card is not None and not force:
        if card.config != config.model_dump(mode="json"):
            raise StaleStageError(
                f"{merged_dir} was trained with a different config (see its run_card.json): "
                "use a new output_dir, or --force to retrain it from scratch"
            )
        return StageResult(merged_dir, card, cached=True)
    if force:  # from scratch: no merged model, no resume point
        shutil.rmtree(merged_dir, ignore_errors=True)
        for p in config.output_dir.glob("checkpoint-*"):
            shutil.rmtree(p, ignore_errors=True)
    _check_resume_config(config)
    return None


def finish_stage(
    trainer: Any, config: TrainConfig, source: str, tokenizer: Any, card: RunCard
) -> None:
    """Write `<output_dir>/merged` (LoRA folded in, run card last) from a trained trainer, on
    the main process, and drop the checkpoints unless kept. Shared by every stage's trainer."""
    hp = config.hparams
    model = trainer.model
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        # Sharded weights: every rank takes part in gathering them into one saved checkpoint
        # (the shipped configs save full / 16-bit state dicts), then rank 0 merges from disk.
        gathered = config.output_dir / "gathered"
        trainer.save_model(str(gathered))
        trainer.accelerator.wait_for_everyone()
        model = (
            _load_gathered(config, source, gathered) if trainer.is_world_process_zero() else None
        )
    if trainer.is_world_process_zero():
        dtype = hp.merged_dtype
        if dtype == "auto":
            dtype = checkpoint_dtype(source, config.model_revision)
        save_merged(model, tokenizer, config.output_dir / MERGED, card, dtype)
        shutil.rmtree(config.output_dir / "gathered", ignore_errors=True)
        if not hp.keep_checkpoints:
            for p in config.output_dir.glob("checkpoint-*"):
                shutil.rmtree(p, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()


def _apply_budget(trainer: Any, budget: int, seen: Exposure) -> None:
    """Train until `budget` loss-bearing tokens: enough epochs to hold it, then stop at it.

    The stop is decided on the running count (restored on resume), so a resumed stage stops
    at the same step as an uninterrupted one.
    """
    import math

    from transformers import TrainerCallback

    if seen.target_tokens <= 0:
        raise DataError("target_token_budget: the data has no loss-bearing tokens")
    trainer.args.max_steps = -1
    trainer.args.num_train_epochs = max(1, math.ceil(budget / seen.target_tokens))

    class StopAtBudget(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if trainer.caml_targets >= budget:
                control.should_training_stop = True
                control.should_log = True
            return control

    trainer.add_callback(StopAtBudget())


def _replay_record(
    config: TrainConfig, part: ReplayPart | None, n_rows: int, passes: float
) -> ReplayRecord | None:
    if part is None or config.replay is None:
        return None
    n_docs = part.records.rows_used
    return ReplayRecord(
        source=config.replay.documents.describe(),
        seed=part.seed,
        fraction=config.replay.fraction,
        fraction_realised=n_docs / (n_docs + n_rows),
        n_documents=n_docs,
        n_sft_rows=n_rows,
        sha256=rows_sha256([part.rows[i] for i in part.records.used_indices]),
        n_tokens=part.exposure.tokens,
        n_target_tokens=part.exposure.target_tokens,
        target_tokens_trained=round(part.exposure.target_tokens * passes),
    )


def _check_targets(
    seen: Exposure, rows_used: int, args: Any, problems: Problems, policy: str
) -> None:
    """Sequences that lost every target to `max_length` (TRL drops them unpacked and keeps them,
    lossless, when packed) are bad rows like any other: an error, or listed when skipping."""
    if not args.packing:
        lost = rows_used - seen.sequences  # dropped by TRL after truncation
    elif args.packing_strategy == "bfd":
        lost = seen.empty_sequences  # truncated to nothing but kept in a packed row
    else:
        lost = 0  # split, never cut: every token is trained on in some piece
    if lost <= 0:
        return
    reason = f"{lost} sequence(s) have no loss-bearing token within max_length={args.max_length}"
    if policy == "error":
        raise DataError(
            f"{reason}: raise hparams.max_length, or set hparams.on_bad_rows: skip to train "
            "without them (listed in the run card)"
        )
    problems.items.append(reason)


def _load_gathered(config: TrainConfig, source: str, gathered: Path) -> Any:
    """The trained model from a gathered save: the base plus the LoRA adapter, or the full model."""
    from transformers import AutoModelForCausalLM

    kw = {"revision": config.model_revision} if config.model_revision else {}
    if config.hparams.lora is None:
        return AutoModelForCausalLM.from_pretrained(gathered, dtype="float32")
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(source, dtype="float32", **kw)
    return PeftModel.from_pretrained(base, gathered)


def save_merged(
    model: Any, tokenizer: Any, merged_dir: Path, card: RunCard, dtype: str = "float32"
) -> None:
    """Fold LoRA into the base weights and write a plain checkpoint, atomically (tmp + rename)."""
    import torch

    model = getattr(model, "module", model)  # DDP wrapper
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model = model.to(getattr(torch, dtype))
    model.config.use_cache = True
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    tmp = merged_dir.with_name(merged_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    write_run_card(card, tmp)
    if merged_dir.exists():
        shutil.rmtree(merged_dir)
    tmp.rename(merged_dir)
