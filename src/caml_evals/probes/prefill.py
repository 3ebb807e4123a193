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
naming the provider, before any sample runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from inspect_ai.model import ChatMessageAssistant, get_model
from inspect_ai.solver import Generate, Solver, TaskState, solver

from ..errors import TaskArgumentError
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


@solver
def prefill(opening: str | Mapping[str, str], name: str = "custom") -> Solver:
    """Open the assistant's answer with `opening` (or `opening[sample id]`), then generate.

    The transcript ends with ONE assistant message holding opening + continuation (metadata
    `probe={"prefill": name, "opening": ...}`), and `state.output.completion` is that whole
    text, so the judge grades the answer the user would have read. A sample with no opening
    in a per-sample mapping is an error naming it (it would silently be a plain run otherwise).
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
        n_before = len(state.messages)
        state.messages.append(ChatMessageAssistant(content=text, metadata={PROBE_KEY: "prefill"}))
        state = await generate(state)
        generated = state.messages[n_before + 1 :]
        continuation = state.output.completion if state.output else ""
        whole = text + continuation
        merged = ChatMessageAssistant(
            content=whole,
            model=generated[-1].model if generated and generated[-1].role == "assistant" else None,
            metadata={PROBE_KEY: {"prefill": name, "opening": text}},
        )
        del state.messages[n_before:]
        state.messages.append(merged)
        if state.output and state.output.choices:
            state.output.choices[0].message = merged
        state.output.completion = whole
        return state

    return solve
