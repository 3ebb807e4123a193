"""Decay curves: intermediate checkpoints of an SFT stage, merged into evaluable models.

`sft.eval_every: K` asks for a checkpoint every K SFT samples trained on. How many samples an
optimizer step holds is B x A x W packed rows (per-device batch x gradient accumulation x
processes), and with packing a row holds several conversations, a number known only once TRL
has packed the data. So the stage's `save_steps` is set to the share K / (n x E) of its total
steps (n rows, E epochs), which transformers turns into Δ = ceil(S x K / (n x E)) whole steps
once it knows the stage's S steps (S = ceil(rows / (B x A x W)) x E): every Δ steps a
checkpoint, rounded *up* to a whole step, so a point never comes early. Point j is the
checkpoint at step j x Δ; its x on the curve is the samples trained by then,
j x Δ / S x n x E (exact when every step holds the same number of samples, the expected count
with packing), recorded in its `point.json`. A planned point whose step j x Δ is not before S
(the rounding left fewer checkpoints than planned) is recorded as not reached, never faked.

The checkpoints are kept (save_total_limit: null, keep_checkpoints: true) until every point of
the stage is merged, then deleted (unless the user's own hparams keep them). Each point is
merged with the stage's own merge (`train.save_merged`: LoRA folded into the base, atomic
tmp + rename, run card last), so a point with a run card is complete and a killed merge is
redone; its key is the SFT stage's key plus the point's index, and its evals are cached by it.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from .config import Hyperparams, TrainConfig
from .runcard import RunCard, now, read_run_card
from .train import MERGED

POINT = "point.json"
NOT_REACHED = "not_reached.json"


class PointNotReached(Exception):
    """The stage's steps, saved every Δ, end before this point (not an error: a note)."""


def point_samples(n: int, every: int | None, epochs: float) -> list[int]:
    """Nominal SFT samples of a stage's intermediate checkpoints: K, 2K, ... below n x epochs."""
    if not every:
        return []
    total = n * epochs
    return [every * j for j in range(1, math.ceil(total / every)) if every * j < total]


def point_hparams(hp: Hyperparams, n: int, every: int) -> Hyperparams:
    """The SFT stage's hparams with a checkpoint every `every` samples kept to the end."""
    share = every / (n * hp.num_train_epochs)
    return Hyperparams.model_validate(
        hp.model_dump() | {"save_steps": share, "save_total_limit": None, "keep_checkpoints": True}
    )


def save_interval(hp: Hyperparams, steps: int) -> int:
    """Δ: transformers' own rounding of a share-of-steps `save_steps` (ceil(S x share))."""
    share = float(hp.save_steps)
    return math.ceil(steps * share) if share < 1 else int(share)


def merge_point(
    parent_dir: Path, parent_config: TrainConfig, point: int, directory: Path, key: str
) -> dict[str, Any]:
    """Merge checkpoint j x Δ of a finished SFT stage into `<directory>/merged` (+ run card).

    Raises PointNotReached (also written to `not_reached.json`) when the stage has no such step.
    """
    from transformers import AutoTokenizer

    from .train import (
        TOKEN_STATE,
        _load_gathered,
        checkpoint_dtype,
        mean_train_loss,
        resolve_base_model,
        save_merged,
    )

    card = read_run_card(parent_dir / MERGED)
    if card is None:
        raise RuntimeError(f"{parent_dir}: the SFT stage has not finished")
    total, every = int(card.global_step), save_interval(parent_config.hparams, card.global_step)
    step = point * every
    epochs = float(parent_config.hparams.num_train_epochs)
    samples_total = card.n_rows * epochs
    info = {
        "point": point,
        "step": step,
        "steps": total,
        "save_every_steps": every,
        "samples": step / total * samples_total if total else None,
        "samples_total": samples_total,
        "parent": str(parent_dir),
    }
    directory.mkdir(parents=True, exist_ok=True)
    if step >= total:
        info["samples"] = None
        info["reason"] = (
            f"the stage trained {total} steps, saved every {every} (eval_every rounded up to "
            f"whole steps): no checkpoint {point} before its end"
        )
        (directory / NOT_REACHED).write_text(json.dumps(info, indent=2), encoding="utf-8")
        raise PointNotReached(info["reason"])
    ckpt = parent_dir / f"checkpoint-{step}"
    if not (ckpt / "trainer_state.json").is_file():
        raise RuntimeError(
            f"{ckpt}: missing (checkpoints are deleted once every point is merged, or by "
            f"hand); delete {parent_dir} to retrain the stage with its decay points"
        )
    ck_state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
    counts = (ck_state.get("stateful_callbacks") or {}).get(TOKEN_STATE, {}).get("attributes", {})
    history = ck_state.get("log_history") or []
    source = resolve_base_model(parent_config.model)
    model = _load_gathered(parent_config, source, ckpt)
    tokenizer = AutoTokenizer.from_pretrained(parent_dir / MERGED)  # the stage's own template
    targets = counts.get("targets")
    value = None
    if card.n_value_tokens is not None and targets is not None and card.n_target_tokens:
        value = round(card.n_value_tokens * targets / card.n_target_tokens)
    point_card = RunCard(
        **card.model_dump()
        | {
            "kind": "caml_train.sft_point",
            "stage_key": key,
            "global_step": step,
            "tokens_trained": counts.get("tokens"),
            "target_tokens_trained": targets,
            "value_tokens_trained": value,
            "train_loss": mean_train_loss(history),
            "loss_history": [
                {"step": float(e["step"]), "loss": float(e["loss"])} for e in history if "loss" in e
            ],
            "resumed_from": None,
            "finished_at": now(),
        }
    )
    (directory / POINT).write_text(json.dumps(info, indent=2), encoding="utf-8")
    dtype = parent_config.hparams.merged_dtype
    if dtype == "auto":
        dtype = checkpoint_dtype(source, parent_config.model_revision)
    save_merged(model, tokenizer, directory / MERGED, point_card, dtype)
    del model
    return info


def read_point(directory: Path) -> dict[str, Any] | None:
    """A point's record: merged (`point.json`) or not reached (`not_reached.json`, a reason)."""
    for name in (POINT, NOT_REACHED):
        path = directory / name
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return None


def drop_checkpoints(parent_dir: Path) -> None:
    """Delete a stage's Trainer checkpoints once its points are merged (the merged stage and
    the merged points are what is evaluated; the checkpoints only served as their sources)."""
    for p in parent_dir.glob("checkpoint-*"):
        shutil.rmtree(p, ignore_errors=True)
