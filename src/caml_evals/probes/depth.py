"""Token-level depth: where along an answer does a tuned checkpoint differ from its base?

Qi et al. (2024) found that safety tuning moves the token distribution mostly in the first few
answer tokens: the per-position KL between the aligned and the base model spikes at the start
and is small after. The same profile for a value-tuned checkpoint says whether the value shapes
only the opening or the whole answer. For each question, an answer is generated greedily (by
the tuned model, and again by the base model); both models score that same answer token by
token, and `KL(tuned || base)` of the next-token distributions is averaged by answer position.

Local transformers checkpoints only (`caml/<dir>` names, the embedded `smollm2`, or folders);
both must share a tokenizer. Nothing is downloaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..errors import ConfigError, TaskArgumentError

ANSWER_SOURCES = ("tuned", "base")


class PositionProfile(BaseModel):
    """Mean KL(tuned || base) per answer position, along one model's answers."""

    answers_from: str = Field(description="'tuned' or 'base': whose answers were scored")
    mean_kl: list[float] = Field(description="per answer position (0 = first answer token)")
    n: list[int] = Field(description="answers long enough to reach each position")
    answers: int
    mean_kl_first: float = Field(description="mean KL over the first `head` positions")
    mean_kl_rest: float = Field(description="mean KL over the later positions")
    head: int


class DepthResult(BaseModel):
    base: str
    tuned: str
    task: str | None = None
    questions: int
    max_new_tokens: int
    profiles: list[PositionProfile]


@dataclass
class LoadedModel:
    name: str
    model: Any
    tokenizer: Any


def load_local(name: str) -> LoadedModel:
    """A local checkpoint (`caml/<dir>`, `smollm2`, or a folder) with its tokenizer, eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..models.embedded import resolve_model_path

    bare = name.removeprefix("caml/")
    try:
        path = resolve_model_path(bare)
    except FileNotFoundError as ex:
        raise ConfigError(str(ex)) from None
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    return LoadedModel(name=name, model=model, tokenizer=tokenizer)


def check_same_tokenizer(a: Any, b: Any, names: tuple[str, str]) -> None:
    if a.get_vocab() != b.get_vocab():
        raise ConfigError(
            f"depth: {names[0]} and {names[1]} have different tokenizers; per-token KL needs one"
        )


def prompt_ids(tokenizer: Any, question: str) -> list[int]:
    """The chat-templated prompt up to the open assistant turn (plain text without a template)."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
        )
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(question)["input_ids"]


def greedy_answer(model: Any, tokenizer: Any, prompt: list[int], max_new_tokens: int) -> list[int]:
    """Greedy answer token ids (EOS and what follows cut)."""
    import torch

    with torch.inference_mode():
        out = model.generate(
            input_ids=torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    answer = out[0, len(prompt) :].tolist()
    eos = tokenizer.eos_token_id
    return answer[: answer.index(eos)] if eos in answer else answer


def answer_log_probs(model: Any, prompt: list[int], answer: list[int]):
    """Log-softmax next-token distributions at each answer position ([len(answer), vocab])."""
    import torch

    ids = torch.tensor([prompt + answer])
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0].float()
    start = len(prompt) - 1  # logits at t predict token t + 1
    return torch.log_softmax(logits[start : start + len(answer)], dim=-1)


def token_kl(tuned_logp, base_logp) -> list[float]:
    """KL(tuned || base) per row of two [positions, vocab] log-probability tensors."""
    kl = (tuned_logp.exp() * (tuned_logp - base_logp)).sum(dim=-1)
    return [max(float(v), 0.0) for v in kl]  # rounding can give -1e-9


def position_profile(
    per_answer: Sequence[Sequence[float]], answers_from: str, head: int = 5
) -> PositionProfile:
    """Average per-answer KL sequences by position (each position over the answers reaching it)."""
    length = max((len(k) for k in per_answer), default=0)
    sums, counts = [0.0] * length, [0] * length
    for kls in per_answer:
        for i, v in enumerate(kls):
            sums[i] += v
            counts[i] += 1
    means = [s / c for s, c in zip(sums, counts)]
    first = [v for kls in per_answer for v in kls[:head]]
    rest = [v for kls in per_answer for v in kls[head:]]
    return PositionProfile(
        answers_from=answers_from,
        mean_kl=means,
        n=counts,
        answers=len(per_answer),
        mean_kl_first=sum(first) / len(first) if first else math.nan,
        mean_kl_rest=sum(rest) / len(rest) if rest else math.nan,
        head=head,
    )


def depth_profiles(
    base: LoadedModel,
    tuned: LoadedModel,
    questions: Sequence[str],
    *,
    max_new_tokens: int = 64,
    answers_from: Sequence[str] = ANSWER_SOURCES,
    head: int = 5,
    task: str | None = None,
) -> DepthResult:
    """Per-position KL(tuned || base) along the tuned (and/or base) model's greedy answers."""
    check_same_tokenizer(base.tokenizer, tuned.tokenizer, (base.name, tuned.name))
    unknown = [a for a in answers_from if a not in ANSWER_SOURCES]
    if unknown:
        raise ConfigError(f"depth: answers_from {unknown} not in {ANSWER_SOURCES}")
    tok = tuned.tokenizer
    prompts = [prompt_ids(tok, q) for q in questions]
    profiles = []
    for source in answers_from:
        writer = tuned if source == "tuned" else base
        per_answer = []
        for prompt in prompts:
            answer = greedy_answer(writer.model, tok, prompt, max_new_tokens)
            if not answer:
                per_answer.append([])
                continue
            per_answer.append(
                token_kl(
                    answer_log_probs(tuned.model, prompt, answer),
                    answer_log_probs(base.model, prompt, answer),
                )
            )
        profiles.append(position_profile(per_answer, source, head))
    return DepthResult(
        base=base.name,
        tuned=tuned.name,
        task=task,
        questions=len(questions),
        max_new_tokens=max_new_tokens,
        profiles=profiles,
    )


def plot_depth(result: DepthResult, path: str | Path) -> Path:
    """Mean KL by answer position, one line per answer source (PNG, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..outputs import atomic_path

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for profile in result.profiles:
        ax.plot(
            range(len(profile.mean_kl)),
            profile.mean_kl,
            label=f"along {profile.answers_from} answers (n={profile.answers})",
        )
    ax.set_xlabel("answer token position")
    ax.set_ylabel("mean KL(tuned || base), nats")
    ax.set_title(
        f"{Path(result.tuned).name} vs {Path(result.base).name}"
        + (f" on {result.task}" if result.task else "")
    )
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def task_arguments(task: str, task_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter of a registered task's function (by its card) with `task_args` applied:
    what Inspect logs as the run's `task_args`. An argument the task does not take is one
    TaskArgumentError line."""
    import inspect as pyinspect

    try:
        bound = pyinspect.signature(_task_function(task)).bind(**(task_args or {}))
    except TypeError as ex:
        raise TaskArgumentError(f"--task {task}: {ex}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def _task_function(task: str):
    import importlib

    from ..cards import card

    entry = card(task)
    return getattr(importlib.import_module(entry.module), entry.function)


def build_task(task: str, task_args: dict[str, Any] | None = None):
    """A registered task (by its card) built with `task_args` (checked by `task_arguments`)."""
    task_arguments(task, task_args)
    return _task_function(task)(**(task_args or {}))


def task_questions(
    task: str, limit: int | None, task_args: dict[str, Any] | None = None
) -> list[str]:
    """The input texts of a registered task's samples (by its card), first `limit` of them."""
    built = build_task(task, task_args)
    texts = []
    for sample in built.dataset:
        value = sample.input
        texts.append(value if isinstance(value, str) else "\n".join(m.text for m in value))
        if limit is not None and len(texts) >= limit:
            break
    return texts
