"""Log-likelihood choice scoring for local transformers models, as lm-evaluation-harness does it.

A base checkpoint (135M-8B) rarely follows an answer format, so multiple-choice benchmarks score
it by which continuation it finds most likely: the sum of the continuation's token
log-probabilities given the context (`acc`), or that sum per character (`acc_norm`). The token
split is the harness's `HFLM._encode_pair`: trailing context spaces move into the continuation,
the continuation ids are the tail of the joint encoding, and no BOS is added unless asked.
Only models served by `caml_evals.models.local.LocalTransformersAPI` (`caml/...`) expose the
weights this needs; any other provider gets a clear error naming the alternative.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from inspect_ai.model import ModelOutput, get_model
from inspect_ai.solver import Generate, Solver, TaskState, solver
from pydantic import BaseModel, Field, model_validator

from ..errors import TaskArgumentError

LOGLIK_QUERY_KEY = "loglik_query"  # Sample.metadata key holding a LoglikQuery
LOGLIK_RESULT_KEY = "loglik_result"  # TaskState.metadata key the loglik solver writes


class LoglikModeError(TaskArgumentError, RuntimeError):
    """Log-likelihood scoring was asked of a model that cannot provide it (`-T mode=loglik` with
    an API model): the user's to fix, so a one-line user error, not a bug."""


class LoglikQuery(BaseModel):
    """What to score in loglik mode: a context and one continuation per choice (same order).

    `norm_lengths` are the character lengths acc_norm divides by; lm-evaluation-harness uses the
    length of the choice text without the delimiter, so they default to the stripped
    continuation lengths.
    """

    context: str
    continuations: list[str] = Field(min_length=2)
    norm_lengths: list[int] | None = None

    @model_validator(mode="after")
    def _lengths(self) -> LoglikQuery:
        if self.norm_lengths is None:
            self.norm_lengths = [max(len(c.strip()), 1) for c in self.continuations]
        if len(self.norm_lengths) != len(self.continuations):
            raise ValueError("norm_lengths must have one entry per continuation")
        if any(n <= 0 for n in self.norm_lengths):
            raise ValueError("norm_lengths must be positive")
        if any(not c for c in self.continuations):
            raise ValueError("continuations must be non-empty")
        return self


class LoglikResult(BaseModel):
    """Per-choice log-likelihoods of one sample (written by `loglik_choice`)."""

    logliks: list[float]
    n_tokens: list[int]
    greedy: list[bool] = Field(description="Was each continuation the greedy continuation?")
    norm_lengths: list[int]
    chosen: int
    chosen_norm: int


def encode_pair(
    tokenizer: Any, context: str, continuation: str, add_bos: bool = False
) -> tuple[list[int], list[int]]:
    """Token ids of (context, continuation) split as lm-evaluation-harness's `_encode_pair`.

    Trailing spaces of the context move to the continuation; the continuation ids are the
    tail of the *joint* encoding, so merges across the boundary are tokenised as in the text.
    """
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    if add_bos and tokenizer.bos_token_id is not None:
        whole = [tokenizer.bos_token_id, *whole]
        ctx = [tokenizer.bos_token_id, *ctx]
    return ctx, whole[len(ctx) :]


def _max_length(model: Any, tokenizer: Any) -> int:
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(model.config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    return value if isinstance(value, int) and 0 < value < 1_000_000 else 2048


def continuation_logliks(
    model: Any,
    tokenizer: Any,
    context: str,
    continuations: Sequence[str],
    add_bos: bool = False,
) -> list[tuple[float, int, bool]]:
    """(sum log p(continuation | context), n tokens, is greedy) for each continuation.

    One right-padded batch per call; an empty context is prefixed with the EOS/BOS token (as the
    harness does) so the first continuation token has something to condition on.
    """
    import torch

    max_len = _max_length(model, tokenizer)
    prefix_id = (
        tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    )
    rows: list[tuple[list[int], list[int]]] = []  # (model input ids, continuation ids)
    for continuation in continuations:
        ctx, cont = encode_pair(tokenizer, context, continuation, add_bos=add_bos)
        if not cont:
            raise ValueError(f"continuation {continuation!r} encodes to no tokens")
        if not ctx:
            ctx = [prefix_id]
        ids = (ctx + cont)[-(max_len + 1) :]
        rows.append((ids[:-1], cont))

    device = next(model.parameters()).device
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, _) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[i, : len(ids)] = 1

    with torch.inference_mode():
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
    results: list[tuple[float, int, bool]] = []
    for i, (ids, cont) in enumerate(rows):
        n_cont, end = len(cont), len(ids)
        piece = logits[i, end - n_cont : end].float().log_softmax(dim=-1)
        target = torch.tensor(cont, dtype=torch.long, device=piece.device)
        total = float(piece.gather(-1, target.unsqueeze(-1)).sum())
        greedy = bool((piece.argmax(dim=-1) == target).all())
        results.append((total, n_cont, greedy))
    return results


def local_model_handles(model: Any) -> tuple[Any, Any]:
    """(transformers model, tokenizer) behind an Inspect model, or a clear error."""
    from ..models.local import LocalTransformersAPI

    api = getattr(model, "api", None)
    if isinstance(api, LocalTransformersAPI):
        return api.model, api.tokenizer
    name = getattr(model, "name", repr(model))
    raise LoglikModeError(
        f"mode='loglik' needs a local transformers model (caml/smollm2 or caml/<checkpoint dir>), "
        f"but the model under test is {name!r} ({type(api).__name__}), which exposes no token "
        f"log-probabilities of arbitrary text. Use mode='generate' (-T mode=generate) instead."
    )


def check_loglik_model() -> None:
    """At task creation: refuse mode=loglik for the model being evaluated, if it is known.

    `inspect eval` makes the model under test active before it builds the task, so a wrong
    provider is one line before any sample runs; a task built outside an eval (no active model
    yet) is checked again by `loglik_choice` on its first sample.
    """
    try:
        from inspect_ai.model._model import active_model
    except ImportError:  # pragma: no cover - a future Inspect without it: the solver still checks
        return
    model = active_model()
    if model is not None:
        local_model_handles(model)


# one forward pass at a time: the model is shared by all concurrently running samples
_FORWARD_LOCK = threading.Lock()


def _score_query(model: Any, tokenizer: Any, query: LoglikQuery, add_bos: bool) -> LoglikResult:
    with _FORWARD_LOCK:
        scored = continuation_logliks(model, tokenizer, query.context, query.continuations, add_bos)
    logliks = [s[0] for s in scored]
    lengths = list(query.norm_lengths or [])
    return LoglikResult(
        logliks=logliks,
        n_tokens=[s[1] for s in scored],
        greedy=[s[2] for s in scored],
        norm_lengths=lengths,
        chosen=max(range(len(logliks)), key=logliks.__getitem__),
        chosen_norm=max(range(len(logliks)), key=lambda i: logliks[i] / lengths[i]),
    )


@solver
def loglik_choice(add_bos: bool = False) -> Solver:
    """Pick the choice whose continuation the model finds most likely (no generation).

    Reads the sample's `loglik_query` metadata, writes a `LoglikResult` to
    `state.metadata["loglik_result"]`, marks the argmax (un-normalised) choice on
    `state.choices`, and records `ANSWER: <letter>` as the output so logs read like generate mode.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        import anyio

        raw = (state.metadata or {}).get(LOGLIK_QUERY_KEY)
        if raw is None:
            raise ValueError(f"sample {state.sample_id} has no {LOGLIK_QUERY_KEY!r} metadata")
        query = LoglikQuery.model_validate(raw)
        if state.choices and len(state.choices) != len(query.continuations):
            raise ValueError(
                f"sample {state.sample_id}: {len(state.choices)} choices but "
                f"{len(query.continuations)} loglik continuations"
            )
        active = get_model()
        hf_model, tokenizer = local_model_handles(active)
        result = await anyio.to_thread.run_sync(_score_query, hf_model, tokenizer, query, add_bos)
        state.metadata[LOGLIK_RESULT_KEY] = result.model_dump()
        for i in range(len(state.choices)):
            state.choices.mark_choice(i, i == result.chosen)
        state.output = ModelOutput.from_content(
            model=str(active), content=f"ANSWER: {chr(ord('A') + result.chosen)}"
        )
        return state

    return solve
