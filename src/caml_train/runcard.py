"""The run card: what produced a checkpoint (config, data hash, seed, package versions, hardware).

Written as the last file of a merged checkpoint, so its presence also means "this stage
finished": a killed run never leaves a card next to half-written weights.
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

RUN_CARD = "run_card.json"
_PACKAGES = (
    "caml-evals",
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "inspect-ai",
    "tokenizers",
    "safetensors",
    "numpy",
    "pydantic",
)


class ReplayRecord(BaseModel):
    """What an SFT stage with `replay` mixed in: the arm's documents beside its SFT rows. The
    card's n_tokens / n_target_tokens / *_trained count both parts; these are the documents'."""

    source: str  # the documents' DataSource
    seed: int  # of their nested sample and of the mixing shuffle
    fraction: float  # configured share of documents in the mixed rows
    fraction_realised: float  # n_documents / (n_documents + n_sft_rows)
    n_documents: int  # replayed documents trained on
    n_sft_rows: int  # the stage's own rows (the card's n_rows)
    sha256: str  # of exactly the replayed document rows, in their sampled order
    n_tokens: int  # the documents' tokens in one pass
    n_target_tokens: int  # their loss-bearing tokens in one pass (every token but the first)
    target_tokens_trained: int  # n_target_tokens scaled by the passes trained


class RunCard(BaseModel):
    kind: str = "caml_train.stage"
    stage: str
    stage_key: str | None = None  # the experiment's cache key, when run from a grid
    config: dict[str, Any]
    base_model: str
    data_source: str
    data_sha256: str  # of exactly the rows trained on, after subsetting and skipping bad rows
    n_rows: int  # rows trained on
    n_rows_requested: int | None = (
        None  # n_samples asked for (SFT); n_rows is less if rows were skipped
    )
    n_examples: int  # sequences after TRL's preparation (documents, pieces, conversations)
    n_train_rows: int  # packed rows (or sequences, unpacked)
    n_tokens: int  # tokens in one pass over the prepared dataset
    n_target_tokens: int  # loss-bearing tokens in one pass
    tokens_trained: int | None = None  # tokens in the batches actually trained (all steps)
    target_tokens_trained: int | None = None  # loss-bearing tokens in those batches
    packing_strategy: str | None = None  # TRL's strategy; None: unpacked (padded batches)
    target_token_budget: int | None = None  # the stage stopped once this many targets trained
    # tokens in sentences with a value keyword: per pass, and scaled by the passes trained
    n_value_tokens: int | None = None
    value_tokens_trained: int | None = None
    skipped_rows: list[str] = []
    # pref stages: pairs trained on, the reference model (None: reference-free), TRL's loss name(s)
    # and the first/last logged value of each TRL reward metric (rewards/margins, ...):
    # {"rewards/margins": {"first": .., "last": .., "first_step": .., "last_step": ..}, ...}
    n_pairs: int | None = None
    reference_model: str | None = None
    loss_type: list[str] | None = None
    pref_metrics: dict[str, dict[str, float]] | None = None
    replay: ReplayRecord | None = None  # documents mixed into an SFT stage (config.replay)
    seed: int
    global_step: int
    train_loss: float | None = None
    loss_history: list[dict[str, float]] = []
    resumed_from: str | None = None
    packages: dict[str, str]
    python: str
    platform: str
    devices: dict[str, Any]
    started_at: str
    finished_at: str


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "cuda": torch.cuda.is_available(),
        "cpu_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def environment() -> dict[str, Any]:
    return {
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "devices": device_info(),
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_run_card(card: RunCard, directory: Path) -> Path:
    path = directory / RUN_CARD
    tmp = path.with_suffix(".tmp")
    tmp.write_text(card.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(path)
    return path


def read_run_card(directory: Path) -> RunCard | None:
    path = directory / RUN_CARD
    if not path.is_file():
        return None
    return RunCard.model_validate(json.loads(path.read_text(encoding="utf-8")))
