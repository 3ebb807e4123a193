"""Prefill probe: start the assistant's answer with a given opening and let the model go on.

Qi et al. (2024) showed that safety tuning often changes only the first few tokens of an answer:
force a compliant opening and the tuned behaviour is gone. The same test for an instilled value:
open the answer neutrally or dismissively ("Animal welfare isn't relevant here; the practical
answer is") and see whether the continuation still shows the value. The judge grades the whole
answer, opening plus continuation, as one assistant message.

Only providers that *continue* a trailing assistant message can be probed this way: the local
`caml/` provider (its chat template is rendered up to the open assistant turn and the opening
appended), Anthropic (native prefill) and the `scripted/` test provider. Any other provider
would answer in a fresh turn after the opening, which is not a prefill: a TaskArgumentError
naming the provider, raised as the first sample starts (the model under test is not known
when the task is built), so the run stops before anything is generated.

With the reasoning split (`-T cot=true`) the opening goes after the model's own reasoning, where
its answer starts: the model first answers the CoT request, its answer part is thrown away,
and it continues `<reasoning>its reasoning</reasoning>` + opening. The reasoning scorer then
grades what the model thought before the opening was forced on it, the main scorer the
answer that starts with the opening (one extra generation per sample). A model whose
reasoning is Inspect reasoning content rather than tags cannot have it put back in front of
a prefill: that sample stops with a TaskArgumentError saying so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from inspect_ai.model import ChatMessageAssistant, get_model
from inspect_ai.solver import Generate, Solver, TaskState, solver

from ..errors import TaskArgumentError
from .reasoning import native_reasoning, split_reasoning
from .sets import lookup

# Providers whose API continues a trailing assistant message instead of starting a new turn.
PREFILL_PROVIDERS = ("caml", "anthropic", "scripted")
OWN_PREFIX = "own:"  # -T prefill=own:<k>: the first k words of a logged answer to the sample
PROBE_KEY = "probe"  # ChatMessage.metadata key marking messages a probe wrote


def provider_of(model) -> str:
    return str(model).split("/", 1)[0]


def check_prefill_provider(model) -> None:
    provider = provider_of(model)
    if provider not in PREFILL_PROVIDERS:
        raise TaskArgumentError(
            f"-T prefill: provider {provider!r} ({model}) does not continue an assistant "
            f"prefill; use one of {', '.join(PREFILL_PROVIDERS)}"
        )


def first_words(text: str, k: int) -> str:
    """The first k whitespace-separated words of `text`, spaced as they were in it."""
    match = re.match(rf"\s*((?:\S+\s+){{{k - 1}}}\S+)", text)
    return match.group(1) if match else text.strip()


def own_prefixes(log_path: str, k: int) -> dict[str, str]:
    """Sample id -> the first k words of that sample's (first epoch) answer in `log_path`."""
    from ..logs import read_log

    log = read_log(log_path)
    prefixes: dict[str, str] = {}
    for sample in log.samples or []:
        key = str(sample.id)
        if key in prefixes or sample.output is None or not sample.output.completion.strip():
            continue
        prefixes[key] = first_words(sample.output.completion, k)
    if not prefixes:
        raise TaskArgumentError(f"-T prefill_log={log_path}: the log has no answers to take")
    return prefixes


def resolve_prefill(name: str, prefill_log: str | None = None) -> str | dict[str, str]:
    """`-T prefill=<name>` to one opening (a shipped name) or per-sample openings (`own:<k>`)."""
    if name.startswith(OWN_PREFIX):
        raw = name[len(OWN_PREFIX) :]
        if not raw.isdigit() or int(raw) < 1:
            raise TaskArgumentError(f"-T prefill={name!r}: give own:<k> with k a whole number >= 1")
        if not prefill_log:
            raise TaskArgumentError(
                f"-T prefill={name!r} takes its openings from a log: add -T prefill_log=<log>"
            )
        return own_prefixes(prefill_log, int(raw))
    if prefill_log:
        raise TaskArgumentError("-T prefill_log only goes with -T prefill=own:<k>")
    return lookup("prefills", name, "prefill").text


async def _own_reasoning(state: TaskState, generate: Generate, name: str) -> str:
    """Generate once (the CoT request is in the prompt) and keep only the tagged reasoning, as
    the lead of the prefill ("" when the reply has none); the reply itself is dropped."""
    n_before = len(state.messages)
    state = await generate(state)
    if native_reasoning(state.output):
        raise TaskArgumentError(
            f"-T cot=true with -T prefill={name}: {get_model()} returns its reasoning as "
            "reasoning content, which cannot be put back before a prefilled answer; run the "
            "prefill without cot"
        )
    reasoning, _ = split_reasoning(state.output.completion)
    del state.messages[n_before:]
    return f"<reasoning>\n{reasoning}\n</reasoning>\n\n" if reasoning else ""


@solver
def prefill(
    opening: str | Mapping[str, str], name: str = "custom", after_reasoning: bool = False
) -> Solver:
    """Open the assistant's answer with `opening` (or `opening[sample id]`), then generate.

    The transcript ends with ONE assistant message holding opening + continuation (metadata
    `probe={"prefill": name, "opening": ...}`), and `state.output.completion` is that whole
    text, so the judge grades the answer the user would have read. A sample with no opening
    in a per-sample mapping is an error naming it (it would silently be a plain run otherwise).
    `after_reasoning` (the reasoning split): the model's own tagged reasoning comes first (the
    module docstring); `reasoning_split(generate_first=False)` then splits it off.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        check_prefill_provider(get_model())
        if isinstance(opening, str):
            text = opening
        else:
            text = opening.get(str(state.sample_id))
            if text is None:
                raise TaskArgumentError(
                    f"-T prefill={name}: no opening for sample {state.sample_id!r} in the log"
                )
        lead = await _own_reasoning(state, generate, name) if after_reasoning else ""
        n_before = len(state.messages)
        state.messages.append(
            ChatMessageAssistant(content=lead + text, metadata={PROBE_KEY: "prefill"})
        )
        state = await generate(state)
        generated = state.messages[n_before + 1 :]
        continuation = state.output.completion if state.output else ""
        whole = lead + text + continuation
        record = {"prefill": name, "opening": text}
        if after_reasoning:
            record["after_reasoning"] = True
        merged = ChatMessageAssistant(
            content=whole,
            model=generated[-1].model if generated and generated[-1].role == "assistant" else None,
            metadata={PROBE_KEY: record},
        )
        del state.messages[n_before:]
        state.messages.append(merged)
        if state.output and state.output.choices:
            state.output.choices[0].message = merged
        state.output.completion = whole
        return state

    return solve
