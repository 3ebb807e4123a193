"""Persona-vector probe: a compassion direction in the residual stream, its separation, its use.

After Chen et al. (2025, "Persona vectors"): the difference of mean residual activations between
responses that show a trait and responses that do not, taken per layer over the response
tokens, is a direction for that trait. Here the trait is compassion, and the contrastive pairs
(one question, a compassionate and an indifferent response) ship in
`benchmarks/probes/persona_pairs.jsonl`. For each layer:

- `direction = mean(act | compassionate) - mean(act | indifferent)` on the training pairs;
- separation on held-out pairs: the share of pairs whose compassionate response projects
  higher than its indifferent one (chance 0.5), and the mean projection gap;
- a checkpoint's own greedy answers to task questions projected on the unit direction (mean
  over answer tokens), so checkpoints of a grid can be placed along it;
- steering: `alpha * direction` added to the layer's output during generation; alpha = 0 is the
  plain model token for token, and the answers per alpha can be scored by any rubric judge.

Local transformers checkpoints only (same architecture as the model the direction came from).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError, DataSourceError
from ..resources import benchmark_path
from .depth import LoadedModel, greedy_answer, prompt_ids

PAIRS_FILE = "probes/persona_pairs.jsonl"


class ContrastPair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    question: str = Field(min_length=1)
    compassionate: str = Field(min_length=1)
    indifferent: str = Field(min_length=1)


class LayerSeparation(BaseModel):
    layer: int  # 0 = embeddings, i = output of decoder layer i
    accuracy: float = Field(description="held-out pairs with compassionate > indifferent")
    mean_gap: float = Field(description="mean projection gap on held-out pairs (unit direction)")
    gap_z: float = Field(description="mean gap / its SD over held-out pairs (scale-free)")
    direction_norm: float


class PersonaResult(BaseModel):
    model: str
    pairs_file: str
    train_pairs: list[str]
    held_out_pairs: list[str]
    layers: list[LayerSeparation]
    best_layer: int
    projections: dict[str, float] = Field(default_factory=dict)  # checkpoint -> mean projection
    steering: list[dict[str, Any]] = Field(default_factory=list)  # {alpha, answers}


def load_pairs(path: str | Path | None = None) -> list[ContrastPair]:
    """The contrastive pairs (the shipped set by default); a bad line is one DataSourceError."""
    path = Path(path) if path else benchmark_path(PAIRS_FILE)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as ex:
        raise DataSourceError(
            f"{path}: cannot read the contrastive pairs ({ex.strerror})"
        ) from None
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            pairs.append(ContrastPair.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as ex:
            raise DataSourceError(f"{path}:{number}: not a contrastive pair ({ex})") from None
    if len(pairs) < 4:
        raise DataSourceError(f"{path}: needs at least 4 pairs (2 to train, 2 held out)")
    return pairs


def split_pairs(
    pairs: Sequence[ContrastPair], held_out: float = 1 / 3, seed: int = 0
) -> tuple[list[ContrastPair], list[ContrastPair]]:
    """(train, held-out), a seeded shuffle; both non-empty."""
    order = list(pairs)
    random.Random(seed).shuffle(order)
    n_held = min(max(1, round(len(order) * held_out)), len(order) - 1)
    return order[n_held:], order[:n_held]


BATCH = 8  # sequences per forward pass (right-padded: causal rows ignore the padding)


def batch_activations(lm: LoadedModel, items: Sequence[tuple[str, str]]):
    """Mean residual activation over each response's tokens, per layer:
    [len(items), layers + 1, hidden] for (question, response) items."""
    import torch

    rows = []
    for question, response in items:
        prompt = prompt_ids(lm.tokenizer, question)
        answer = lm.tokenizer(response, add_special_tokens=False)["input_ids"]
        rows.append((prompt + answer, len(prompt)))
    out = []
    pad = lm.tokenizer.pad_token_id or lm.tokenizer.eos_token_id or 0
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.tensor([r + [pad] * (width - len(r)) for r, _ in chunk])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r, _ in chunk])
        with torch.inference_mode():
            hidden = lm.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        stacked = torch.stack(hidden.hidden_states, dim=1).float()  # [batch, layers+1, T, H]
        for i, (r, n_prompt) in enumerate(chunk):
            out.append(stacked[i, :, n_prompt : len(r)].mean(dim=1))
    return torch.stack(out)


def response_activations(lm: LoadedModel, question: str, response: str):
    """Mean residual activation over the response tokens, per layer: [layers + 1, hidden]."""
    return batch_activations(lm, [(question, response)])[0]


def persona_directions(lm: LoadedModel, pairs: Sequence[ContrastPair]):
    """Difference of mean activations (compassionate - indifferent), per layer."""
    pos = batch_activations(lm, [(p.question, p.compassionate) for p in pairs])
    neg = batch_activations(lm, [(p.question, p.indifferent) for p in pairs])
    return pos.mean(dim=0) - neg.mean(dim=0)


def layer_separation(lm: LoadedModel, directions, pairs: Sequence[ContrastPair]):
    """Per layer: held-out accuracy and mean projection gap on the unit direction."""
    units = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    pos = batch_activations(lm, [(p.question, p.compassionate) for p in pairs])
    neg = batch_activations(lm, [(p.question, p.indifferent) for p in pairs])
    gap = ((pos - neg) * units).sum(dim=-1)  # [pairs, layers + 1]
    return [
        LayerSeparation(
            layer=layer,
            accuracy=float((gap[:, layer] > 0).float().mean()),
            mean_gap=float(gap[:, layer].mean()),
            gap_z=float(gap[:, layer].mean() / gap[:, layer].std().clamp_min(1e-12)),
            direction_norm=float(directions[layer].norm()),
        )
        for layer in range(gap.shape[1])
    ]


def _decoder_layers(model: Any):
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ConfigError(f"persona: {type(model).__name__} has no model.layers to steer")
    return layers


@contextmanager
def steering(model: Any, layer: int, vector, alpha: float) -> Iterator[None]:
    """Add `alpha * vector` to the output of decoder layer `layer` (1-based) while active."""
    if layer < 1:
        raise ConfigError("persona: steer a decoder layer (1 or more), not the embeddings")
    module = _decoder_layers(model)[layer - 1]

    def hook(_module, _inputs, output):
        if alpha == 0:
            return output
        if isinstance(output, tuple):
            return (output[0] + alpha * vector.to(output[0].dtype), *output[1:])
        return output + alpha * vector.to(output.dtype)

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def answer_projection(
    lm: LoadedModel, unit, layer: int, questions: Sequence[str], max_new_tokens: int
) -> float:
    """Mean projection of the model's own greedy answers (answer tokens) on `unit` at `layer`."""
    values = []
    for q in questions:
        prompt = prompt_ids(lm.tokenizer, q)
        answer = greedy_answer(lm.model, lm.tokenizer, prompt, max_new_tokens)
        if not answer:
            continue
        text = lm.tokenizer.decode(answer, skip_special_tokens=True)
        values.append(float(response_activations(lm, q, text)[layer] @ unit))
    return sum(values) / len(values) if values else float("nan")


def steered_answers(
    lm: LoadedModel, vector, layer: int, alpha: float, questions: Sequence[str], max_new_tokens: int
) -> list[str]:
    with steering(lm.model, layer, vector, alpha):
        return [
            lm.tokenizer.decode(
                greedy_answer(lm.model, lm.tokenizer, prompt_ids(lm.tokenizer, q), max_new_tokens),
                skip_special_tokens=True,
            )
            for q in questions
        ]


def persona_probe(
    lm: LoadedModel,
    *,
    pairs: Sequence[ContrastPair] | None = None,
    pairs_file: str | None = None,
    seed: int = 0,
    layer: int | None = None,
    checkpoints: Sequence[LoadedModel] = (),
    questions: Sequence[str] = (),
    max_new_tokens: int = 48,
    alphas: Sequence[float] = (),
    direction_file: str | Path | None = None,
) -> PersonaResult:
    """Directions from `lm`, separation on held-out pairs, projections of `lm` and
    `checkpoints` on task `questions`, and steered answers of `lm` per alpha.
    `direction_file`: save the chosen layer's direction there (for `-T steer=`)."""
    pairs = list(pairs) if pairs is not None else load_pairs(pairs_file)
    train, held = split_pairs(pairs, seed=seed)
    directions = persona_directions(lm, train)
    layers = layer_separation(lm, directions, held)
    candidates = [s for s in layers if s.layer >= 1]
    best = max(candidates, key=lambda s: (s.accuracy, s.gap_z)).layer
    chosen = best if layer is None else layer
    if not 1 <= chosen < len(layers):
        raise ConfigError(f"persona: --layer {chosen} not in 1..{len(layers) - 1}")
    unit = directions[chosen] / directions[chosen].norm().clamp_min(1e-12)
    result = PersonaResult(
        model=lm.name,
        pairs_file=str(pairs_file or benchmark_path(PAIRS_FILE)),
        train_pairs=[p.id for p in train],
        held_out_pairs=[p.id for p in held],
        layers=layers,
        best_layer=chosen,
    )
    if direction_file is not None:
        from .steer import save_direction

        save_direction(direction_file, directions[chosen], chosen, lm.name)
    if questions:
        for model in (lm, *checkpoints):
            result.projections[model.name] = answer_projection(
                model, unit, chosen, questions, max_new_tokens
            )
        for alpha in alphas:
            answers = steered_answers(
                lm, directions[chosen], chosen, alpha, questions, max_new_tokens
            )
            result.steering.append({"alpha": alpha, "answers": answers})
    return result
