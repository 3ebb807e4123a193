"""ONE trainer function for all three stages: `text` (document-tuning), `instruct`, `sft`.

The stages differ only in how rows become token examples (see `data.py`); the model, LoRA,
Trainer, resume and merge logic is shared, so a fix here applies to every stage. Output of a
stage directory:

    <output_dir>/checkpoint-<step>/   Trainer checkpoints (resume points; deleted at the end
                                      unless hparams.keep_checkpoints)
    <output_dir>/merged/              merged full checkpoint + tokenizer + run_card.json,
                                      loadable by `caml/<path>` in Inspect and by from_pretrained

Resume: a killed stage restarts from its latest complete checkpoint-*; a finished stage (merged
run card present) is not retrained. Multi-GPU: launch `caml-train train` under torchrun or
`accelerate launch`; only the main process merges and writes.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .data import build_examples, load_rows, rows_sha256, sample_rows, training_rows
from .runcard import RunCard, environment, now, read_run_card, write_run_card

log = logging.getLogger(__name__)
MERGED = "merged"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


class StaleStageError(RuntimeError):
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
    """The base model ready for training (LoRA-wrapped unless full fine-tuning), tokenizer, path."""
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
    # A cache object disables transformers' packed-sequence (block-diagonal) masking; training
    # never needs one.
    model.config.use_cache = False
    if hp.lora is not None:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=hp.lora.r,
                lora_alpha=hp.lora.alpha,
                lora_dropout=hp.lora.dropout,
                target_modules=list(hp.lora.target_modules),
                task_type="CAUSAL_LM",
            ),
        )
    return model, tokenizer, source


def checkpoint_dtype(source: str, revision: str | None = None) -> str:
    """The dtype the base checkpoint declares (the merged model is saved in it by default)."""
    from transformers import AutoConfig

    kw = {"revision": revision} if revision else {}
    dtype = getattr(AutoConfig.from_pretrained(source, **kw), "dtype", None)
    return str(dtype).removeprefix("torch.") if dtype is not None else "float32"


def training_arguments(config: TrainConfig) -> Any:
    import torch
    from transformers import TrainingArguments

    hp = config.hparams
    return TrainingArguments(
        output_dir=str(config.output_dir),
        per_device_train_batch_size=hp.batch_size,
        gradient_accumulation_steps=hp.grad_accum,
        learning_rate=hp.learning_rate,
        num_train_epochs=hp.epochs,
        max_steps=hp.max_steps,
        lr_scheduler_type=hp.lr_scheduler,
        warmup_steps=hp.warmup_ratio,  # a float in [0, 1) is a ratio of total steps
        weight_decay=hp.weight_decay,
        max_grad_norm=hp.max_grad_norm,
        bf16=_use_bf16(hp.bf16),
        activation_checkpointing=hp.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False}
        if hp.gradient_checkpointing
        else None,
        logging_steps=hp.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=hp.save_steps,
        save_total_limit=hp.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        remove_unused_columns=False,  # position_ids must reach the model
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=not sys.stderr.isatty(),
        ddp_find_unused_parameters=False if hp.lora is not None else None,
    )


def train(
    config: TrainConfig,
    *,
    callbacks: list[Any] | None = None,
    stage_key: str | None = None,
    force: bool = False,
) -> StageResult:
    """Train one stage, resuming from its latest checkpoint, and write the merged checkpoint.

    Returns at once (cached=True) when the stage's merged run card already exists.
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

    from transformers import Trainer, set_seed

    started = now()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)  # before the LoRA weights are initialised, not only before training
    model, tokenizer, source = load_model_and_tokenizer(config)
    hp = config.hparams
    rows = sample_rows(load_rows(config.data), config.n_samples, config.seed)
    built = build_examples(rows, config.stage, tokenizer, hp.seq_len, hp.on_bad_rows)
    train_rows, collator = training_rows(
        built, hp.seq_len, hp.packing, tokenizer.pad_token_id, hp.attn_implementation
    )
    if hp.packing and getattr(collator, "flatten", False):
        log.info("flash attention: each packed batch is flattened into one row (no cross-talk)")
    log.info(
        "stage %s: %d rows -> %d examples -> %d training rows (%d tokens, %d targets)",
        config.stage,
        built.rows_used,
        len(built.examples),
        len(train_rows),
        built.n_tokens,
        built.n_target_tokens,
    )

    trainer = Trainer(
        model=model,
        args=training_arguments(config),
        data_collator=collator,
        train_dataset=train_rows,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    resume = last_checkpoint(config.output_dir)
    if resume is not None:
        log.info("resuming %s from %s", config.output_dir, resume.name)
    t0 = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    log.info("stage %s trained in %.1fs", config.stage, time.perf_counter() - t0)

    card = RunCard(
        stage=config.stage,
        stage_key=stage_key,
        config=config.model_dump(mode="json"),
        base_model=source,
        data_source=config.data.describe(),
        data_sha256=rows_sha256([rows[i] for i in built.used_indices]),
        n_rows=built.rows_used,
        n_rows_requested=config.n_samples,
        n_examples=len(built.examples),
        n_train_rows=len(train_rows),
        n_tokens=built.n_tokens,
        n_target_tokens=built.n_target_tokens,
        skipped_rows=built.problems.items,
        seed=config.seed,
        global_step=trainer.state.global_step,
        train_loss=float(output.training_loss)
        if output.training_loss == output.training_loss
        else None,
        loss_history=[
            {"step": float(e["step"]), "loss": float(e["loss"])}
            for e in trainer.state.log_history
            if "loss" in e
        ],
        resumed_from=str(resume) if resume else None,
        started_at=started,
        finished_at=now(),
        **environment(),
    )
    if trainer.is_world_process_zero():
        dtype = hp.merged_dtype
        if dtype == "auto":
            dtype = checkpoint_dtype(source, config.model_revision)
        save_merged(trainer.model, tokenizer, merged_dir, card, dtype)
        if not hp.keep_checkpoints:
            for p in config.output_dir.glob("checkpoint-*"):
                shutil.rmtree(p, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return StageResult(merged_dir, card, cached=False)


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
