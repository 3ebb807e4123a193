"""Inspect model API for the embedded model and any local transformers checkpoint (`caml/<name>`).

Built on Inspect's own `hf` provider so batching, logprobs and tool handling behave the same;
what it adds: resolving `smollm2` to the embedded checkpoint (materialised once, offline),
greedy decoding by default (reproducible scores), and token counting with the model's own
tokenizer (Inspect's default counts with tiktoken, which downloads its vocabulary at run time).
"""

from __future__ import annotations

from typing import Any

from inspect_ai.model import GenerateConfig
from inspect_ai.model._providers.hf import HuggingFaceAPI

from .embedded import resolve_model_path


class LocalTransformersAPI(HuggingFaceAPI):
    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),
        **model_args: Any,
    ) -> None:
        path = resolve_model_path(model_name)
        model_args.setdefault("do_sample", False)
        model_args.setdefault("device", "cpu" if _cpu_only() else None)
        if model_args.get("device") is None:
            model_args.pop("device")
        super().__init__(
            model_name=model_name,
            base_url=base_url,
            api_key=api_key,
            config=config,
            model_path=str(path),
            **model_args,
        )
        self.checkpoint_path = path

    async def count_text_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def max_tokens(self) -> int | None:
        return 512


def _cpu_only() -> bool:
    import torch

    return not torch.cuda.is_available() and not torch.backends.mps.is_available()


def _option_token_ids(tokenizer, option: str) -> list[int]:
    """First token of each spelling of an option as it could follow 'GRADE:' (' YES', 'YES', ' Yes')."""
    ids: set[int] = set()
    for spelling in {option, option.capitalize(), option.lower()}:
        for prefix in (" ", ""):
            tokens = tokenizer(prefix + spelling, add_special_tokens=False)["input_ids"]
            if tokens:
                ids.add(tokens[0])
    return sorted(ids)


def answer_probabilities(
    api: LocalTransformersAPI, prompt: str, answer_prefix: str, options: list[str]
) -> dict[str, float]:
    """P(option | chat(prompt) + assistant prefix), normalised over the options.

    The logprob-weighted judge: instead of hoping a small model writes 'GRADE: YES', read the
    next-token distribution right after the assistant has written `answer_prefix`. Spellings of
    an option that differ only in case or a leading space are pooled.
    """
    return option_probabilities(api, prompt, answer_prefix, options)[0]


def option_probabilities(
    api: LocalTransformersAPI, prompt: str, answer_prefix: str, options: list[str]
) -> tuple[dict[str, float], int]:
    """`answer_probabilities` and the number of input tokens of the forward pass.

    The forward pass is not a `generate` call, so Inspect records no usage for it; the caller
    records the token count itself (the rubric scorer's `grader_usage`).
    """
    import torch

    tokenizer = api.tokenizer
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    encoded = tokenizer(chat + answer_prefix, return_tensors="pt", add_special_tokens=False)
    n_tokens = int(encoded["input_ids"].shape[-1])
    encoded = {k: v.to(api.model.device) for k, v in encoded.items()}
    with torch.no_grad():
        logits = api.model(**encoded).logits[0, -1].float()
    probs = torch.softmax(logits, dim=-1)
    mass = {opt: float(sum(probs[i] for i in _option_token_ids(tokenizer, opt))) for opt in options}
    total = sum(mass.values())
    if total <= 0:
        raise ValueError("none of the options has any probability mass")
    return {opt: m / total for opt, m in mass.items()}, n_tokens
