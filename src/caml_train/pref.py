"""The `pref` stage: preference optimisation of a checkpoint on TRL's preference trainers.

`pref.loss_type` picks the trainer: a DPOTrainer loss (sigmoid = DPO, ipo, hinge, robust,
apo_zero, sigmoid_norm, sft, ... or a list combined by `loss_weights`), `kto` /
`apo_zero_unpaired` (KTOTrainer, on the pairs unpaired into desirable and undesirable
examples) or `simpo` (TRL's experimental CPOTrainer with the SimPO loss, reference-free).
TRL tokenises, renders the chat template, computes the policy and reference log-probs and the
loss; what is ours is what every caml-train stage does: rows validated with a reason per bad row
(`hparams.on_bad_rows`), seeded nested subsets (`n_samples`), the reference model choice,
resume from the latest complete checkpoint (even after SIGKILL), token counts that survive the
resume, the merged checkpoint and its run card (with the first and last logged reward margin,
accuracy, chosen and rejected rewards, so a reader sees the margin move).

Rows (JSONL/parquet/Hub, like every stage), each turned into TRL's conversational preference
format (`prompt`: messages ending with a user turn; `chosen`/`rejected`: one assistant message):

- `prompt`, `chosen`, `rejected` as strings (optional `system`): a one-turn chat, like the
  `prompt`/`response` rows of an SFT stage;
- UltraFeedback-binarized: `prompt` a string, `chosen`/`rejected` whole conversations that end
  with the assistant reply (their shared earlier turns are the prompt);
- TRL's conversational format: `prompt` a message list, `chosen`/`rejected` `[assistant msg]`
  (what `caml-train rlaif` writes).

A row is bad (error, or skipped and listed in the run card) when a key is missing, a reply is
empty, chosen equals rejected, the two replies continue different conversations, or the prompt
alone fills `max_length` (no reply token left to compare).
"""

from __future__ import annotations

import logging
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError, TrainConfig, pref_trl_kwargs
from .data import DataError, Problems, Records, rows_sha256, to_messages
from .data import value_tokens as count_value_tokens
from .runcard import RunCard, now
from .train import (
    MERGED,
    StageResult,
    TokenCounts,
    _LogAtSaveAndEnd,
    cached_stage,
    finish_stage,
    load_model_and_tokenizer,
    peft_config,
    seeded_base_model,
    stage_rows,
    train_from_last_checkpoint,
    trained_card_fields,
    with_trainer_defaults,
)

log = logging.getLogger(__name__)
ROW = "caml_row"  # the input row of each prepared example (finds rows TRL dropped)
METRIC_PREFIXES = ("rewards/", "logps/")  # TRL's logged preference metrics kept in the card


# ---------------------------------------------------------------------------- rows


def to_pair(row: Any) -> dict[str, list[dict[str, str]]]:
    """One preference row in TRL's conversational format; a ValueError says why it is bad."""
    from .rlaif import prompt_messages

    if not isinstance(row, dict):
        raise ValueError("not a JSON object")  # noqa: TRY004 - reported as a bad row
    for key in ("prompt", "chosen", "rejected"):
        if key not in row:
            raise ValueError(f"missing `{key}`")
    chosen_context, chosen = _reply(row["chosen"], "chosen")
    rejected_context, rejected = _reply(row["rejected"], "rejected")
    if chosen_context != rejected_context:
        raise ValueError("`chosen` and `rejected` continue different conversations")
    if chosen.strip() == rejected.strip():
        raise ValueError("chosen and rejected replies are identical")
    prompt = row["prompt"]
    if not isinstance(prompt, (str, list)):
        raise ValueError("`prompt` must be a string or a list of messages")  # noqa: TRY004
    if isinstance(prompt, str) and not prompt.strip():
        raise ValueError("empty `prompt`")
    last = prompt[-1] if isinstance(prompt, list) and prompt else None
    if isinstance(last, dict) and last.get("role") != "user":
        raise ValueError("`prompt` must end with a user turn")
    messages = prompt_messages({"prompt": prompt, "system": row.get("system")})
    if chosen_context:  # the reply lists carry the conversation (UltraFeedback-binarized)
        if isinstance(prompt, str):
            users = [m["content"] for m in chosen_context if m["role"] == "user"]
            if not users or users[-1].strip() != prompt.strip():
                raise ValueError("`prompt` is not the last user turn of `chosen`'s conversation")
            messages = chosen_context
        elif chosen_context[: len(messages)] == messages:
            messages = chosen_context
        else:
            messages = messages + chosen_context  # TRL's rule: the prompt, then the lists
        if messages[-1]["role"] != "user":
            raise ValueError("the conversation before the replies must end with a user turn")
    return {
        "prompt": messages,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def _reply(value: Any, column: str) -> tuple[list[dict[str, str]], str]:
    """(earlier turns, reply text) of a `chosen`/`rejected` value: a string or messages."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"empty {column} reply")
        return [], value
    if not isinstance(value, list):
        raise ValueError(f"`{column}` must be a string or a list of messages")  # noqa: TRY004
    try:
        messages = to_messages({"messages": value})
    except ValueError as ex:
        raise ValueError(f"`{column}`: {ex}") from None
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise ValueError(f"empty {column} reply (its last message must be the assistant's)")
    return messages[:-1], messages[-1]["content"]


def to_pairs(rows: list[Any], on_bad_rows: str, problems: Problems) -> Records:
    """Validate every row (reason per bad row); raise them, or skip and list them."""
    records: list[dict[str, Any]] = []
    used: list[int] = []
    for i, row in enumerate(rows):
        try:
            records.append({**to_pair(row), ROW: i})
            used.append(i)
        except ValueError as ex:
            problems.add(i, row, str(ex))
    problems.raise_or_keep(on_bad_rows, "preference")
    if not records:
        raise DataError(f"no usable preference rows ({len(rows)} given)")
    return Records(records, used, problems)


def unpaired(pairs: Records, seed: int) -> list[dict[str, Any]]:
    """KTO's examples: each pair as a desirable (chosen) and an undesirable (rejected) one.

    KTOTrainer samples sequentially and estimates its KL term from the completions of the other
    examples in a batch, so the order is built here: a seeded shuffle of the pairs, then two
    passes that alternate chosen and rejected between consecutive pairs. A batch (of two or more)
    holds both labels, and the completion each example's KL term borrows (its neighbour's) is
    another prompt's reply.
    """
    order = list(range(len(pairs.records)))
    random.Random(seed).shuffle(order)
    out = []
    for flip in (0, 1):
        for k, i in enumerate(order):
            r = pairs.records[i]
            desirable = (k + flip) % 2 == 0
            out.append(
                {
                    "prompt": r["prompt"],
                    "completion": r["chosen"] if desirable else r["rejected"],
                    "label": desirable,
                    ROW: r[ROW],
                }
            )
    return out


# ---------------------------------------------------------------------------- trainer


def pref_config(config: TrainConfig) -> Any:
    """TRL's DPOConfig / KTOConfig / CPOConfig for the stage: hparams + pref, plus what every
    caml-train stage sets (directory, seed, precision from the hardware, checkpoint by steps)."""
    assert config.pref is not None
    try:
        cls, kw = pref_trl_kwargs(config.hparams, config.pref)
    except ValueError as ex:  # checked when the config loaded; a hand-built config lands here
        raise ConfigError(str(ex)) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return cls(
            output_dir=str(config.output_dir),
            seed=config.seed,
            data_seed=config.seed,
            **with_trainer_defaults(config.hparams, kw),
        )


def _trainer_class(kind: str) -> Any:
    """The TRL trainer, counting the tokens and reply tokens of every batch it trains on (kept in
    the checkpoint's trainer state like an SFT stage's counts, so a resumed run reports totals)."""
    if kind == "dpo":
        from trl import DPOTrainer as base
    elif kind == "kto":
        from trl import KTOTrainer as base
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from trl.experimental.cpo import CPOTrainer as base

    class Counting(TokenCounts, base):
        def training_step(self, model, inputs, *args, **kwargs):
            self.caml_count(*batch_counts(inputs))
            return super().training_step(model, inputs, *args, **kwargs)

    Counting.__name__ = f"Counting{base.__name__}"
    return Counting


def batch_counts(inputs: dict[str, Any]) -> tuple[int, int]:
    """(tokens, reply tokens) of one preference batch: chosen and rejected sequences (DPO, CPO)
    or the examples (KTO; its KL sequences are scored, not trained on, and not counted)."""
    if "completion_mask" in inputs:  # DPOTrainer, KTOTrainer
        mask = inputs["attention_mask"]
        return int(mask.sum()), int((inputs["completion_mask"] * mask).sum())
    tokens = targets = 0
    for side in ("chosen", "rejected"):  # CPOTrainer
        tokens += int(inputs[f"{side}_attention_mask"].sum())
        targets += int((inputs[f"{side}_labels"] != -100).sum())
    return tokens, targets


@dataclass
class PairExposure:
    """What one pass over the prepared dataset trains on (within max_length)."""

    rows: int = 0  # prepared examples: pairs (DPO, CPO) or unpaired examples (KTO)
    sequences: int = 0  # chosen + rejected sequences
    tokens: int = 0
    target_tokens: int = 0  # reply tokens (the ones the log-probs are summed over)


def pair_exposure(dataset: Any, max_length: int | None) -> tuple[PairExposure, dict[int, int]]:
    """Count the prepared dataset (TRL's columns), and each input row's fewest reply tokens on
    one side (0: the prompt filled max_length)."""
    cap = max_length or 10**12
    seen = PairExposure()
    fewest: dict[int, int] = {}
    columns = set(dataset.column_names)
    for ex in dataset:
        seen.rows += 1
        if "chosen_ids" in columns:  # DPO: truncated at max_length by the collator
            sides = [(len(ex["prompt_ids"]), len(ex[f"{s}_ids"])) for s in ("chosen", "rejected")]
            counts = [(min(p + c, cap), min(p + c, cap) - min(p, cap)) for p, c in sides]
        elif "completion_ids" in columns:  # KTO
            p, c = len(ex["prompt_ids"]), len(ex["completion_ids"])
            counts = [(min(p + c, cap), min(p + c, cap) - min(p, cap))]
        else:  # CPO: truncated when tokenised
            counts = [
                (len(ex[f"{s}_input_ids"]), sum(1 for x in ex[f"{s}_labels"] if x != -100))
                for s in ("chosen", "rejected")
            ]
        seen.sequences += len(counts)
        seen.tokens += sum(t for t, _ in counts)
        seen.target_tokens += sum(t for _, t in counts)
        row = int(ex[ROW])
        fewest[row] = min([fewest.get(row, 10**12), *(t for _, t in counts)])
    return seen, fewest


@dataclass
class PrefTrainer:
    """A pref stage ready to train: the TRL trainer (dataset prepared) and where rows went."""

    trainer: Any
    pairs: Records
    rows: list[dict[str, Any]]
    problems: Problems
    tokenizer: Any
    source: str
    reference_model: str | None
    seen: PairExposure


def _reference(config: TrainConfig, source: str, tokenizer: Any) -> tuple[Any, str | None]:
    """(the reference model to hand TRL, or None; what the run card names as the reference)."""
    pref = config.pref
    assert pref is not None
    if not pref.uses_reference():
        return None, None
    if pref.reference is None and config.hparams.lora is not None:
        return None, source  # TRL disables the adapter: the input model itself
    spec = config
    if pref.reference is not None:
        spec = config.model_copy(update={"model": str(pref.reference), "model_revision": None})
    ref, ref_tokenizer, ref_source = load_model_and_tokenizer(spec)
    if ref_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(
            f"pref.reference {ref_source} has another tokenizer than {source}: "
            "its log-probs would score other tokens"
        )
    ref.requires_grad_(False)
    return ref, ref_source


def build_pref_trainer(
    config: TrainConfig,
    *,
    callbacks: list[Any] | None = None,
    model: Any = None,
    tokenizer: Any = None,
) -> PrefTrainer:
    """Rows -> validated pairs -> TRL's preference trainer with its prepared dataset. Rows TRL
    cannot use (the prompt fills max_length) are bad rows like any other."""
    import datasets

    assert config.pref is not None
    hp = config.hparams
    kind = config.pref.trainer_kind()
    args = pref_config(config)  # config errors before anything loads
    rows, problems = stage_rows(config)
    pairs = to_pairs(rows, hp.on_bad_rows, problems)
    reference = config.pref.reference
    if reference is not None and not Path(reference).is_dir():
        raise ConfigError(f"pref.reference: no checkpoint directory at {reference}")
    model, tokenizer, source = seeded_base_model(config, model, tokenizer)
    ref_model, reference_model = _reference(config, source, tokenizer)
    examples = unpaired(pairs, config.seed) if kind == "kto" else pairs.records
    kw: dict[str, Any] = {} if kind == "cpo" else {"ref_model": ref_model}
    trainer = _trainer_class(kind)(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=peft_config(config),
        callbacks=[_LogAtSaveAndEnd(), *(callbacks or [])],
        **kw,
    )
    seen, fewest = pair_exposure(trainer.train_dataset, hp.max_length)
    lost = [i for i in pairs.used_indices if fewest.get(i, 0) == 0]
    if lost:
        for i in lost:
            problems.add(i, rows[i], f"the prompt fills max_length={hp.max_length}: no reply token")
        if hp.on_bad_rows == "error":
            problems.raise_or_keep("error", "preference")
        keep = set(pairs.used_indices) - set(lost)
        trainer.train_dataset = trainer.train_dataset.filter(lambda ex: ex[ROW] in keep)
        pairs = Records([r for r in pairs.records if r[ROW] in keep], sorted(keep), pairs.problems)
        if not pairs.records:
            raise DataError("no preference row has a reply token within max_length")
        seen, _ = pair_exposure(trainer.train_dataset, hp.max_length)
    return PrefTrainer(trainer, pairs, rows, problems, tokenizer, source, reference_model, seen)


def pref_metrics(history: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """First and last logged value (and step) of each of TRL's reward / log-prob metrics."""
    out: dict[str, dict[str, float]] = {}
    for entry in history:
        if "loss" not in entry:  # train logs only (not the end-of-training summary)
            continue
        for key, value in entry.items():
            if key.startswith(METRIC_PREFIXES) and isinstance(value, (int, float)):
                m = out.setdefault(key, {"first": float(value), "first_step": entry["step"]})
                m["last"], m["last_step"] = float(value), float(entry["step"])
    for m in out.values():
        m["first_step"] = float(m["first_step"])
    return out


def train_pref(
    config: TrainConfig,
    *,
    callbacks: list[Any] | None = None,
    stage_key: str | None = None,
    force: bool = False,
) -> StageResult:
    """Train one pref stage, resuming from its latest checkpoint, and write the merged model.

    Returns at once (cached=True) when the stage's merged run card already exists.
    """
    assert config.stage == "pref" and config.pref is not None
    cached = cached_stage(config, force)
    if cached is not None:
        return cached
    started = now()
    st = build_pref_trainer(config, callbacks=callbacks)
    trainer, pairs, seen = st.trainer, st.pairs, st.seen
    log.info(
        "stage pref (%s): %d pairs, %d sequences (%d tokens, %d reply tokens)",
        "+".join(config.pref.losses()),
        pairs.rows_used,
        seen.sequences,
        seen.tokens,
        seen.target_tokens,
    )
    resume = train_from_last_checkpoint(trainer, config)
    n_value = None
    if config.value_keywords is not None:  # in the chosen replies (what the stage rewards)
        chosen = Records([{"messages": r["chosen"]} for r in pairs.records], [], pairs.problems)
        n_value = count_value_tokens(chosen, st.tokenizer, config.value_keywords)
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
        base_model=st.source,
        data_sha256=rows_sha256([st.rows[i] for i in pairs.used_indices]),
        n_rows=pairs.rows_used,
        packing_strategy=None,
        skipped_rows=st.problems.items,
        n_pairs=pairs.rows_used,
        reference_model=st.reference_model,
        loss_type=config.pref.losses(),
        pref_metrics=pref_metrics(trainer.state.log_history),
    )
    finish_stage(trainer, config, st.source, st.tokenizer, card)
    return StageResult(config.output_dir / MERGED, card, cached=False)
