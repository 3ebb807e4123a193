"""The multi-turn nudge of the published protocol: an agent that stops without buying is told
once more to go ahead (upstream's `confirm_to_complete`, TAC 6-C and later).

The v2 prompts no longer forbid follow-up questions, so an agent may end its turn by asking
("Shall I book the sanctuary visit?"). There is no customer to answer, so the agent gets the
neutral `CONFIRM_MESSAGE` as a user turn and the tool loop resumes, up to `max_confirms` times
(2, upstream's default). An agent that still buys nothing has declined after being told to
proceed. The number of nudges is kept in the store (`CONFIRMS_KEY`) for the scorer and the
`nudge_rate` metric.
"""

from __future__ import annotations

from collections.abc import Sequence

from inspect_ai.model import ChatMessage, ChatMessageUser
from inspect_ai.solver import Generate, Solver, TaskState, solver

from .prompts import CONFIRM_MESSAGE
from .tools import PURCHASE_TOOL

CONFIRMS_KEY = "confirms_used"


def purchase_calls(messages: Sequence[ChatMessage]) -> list[dict]:
    """Arguments of every `purchase_tickets` call the agent made, in order (valid or not)."""
    return [
        dict(call.arguments or {})
        for m in messages
        if m.role == "assistant" and m.tool_calls
        for call in m.tool_calls
        if call.function == PURCHASE_TOOL
    ]


@solver
def confirm_until_purchase(max_confirms: int = 2) -> Solver:
    """The tool loop, resumed with a neutral confirmation while no purchase has been attempted."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        state = await generate(state, tool_calls="loop")
        confirms = 0
        while confirms < max_confirms and not purchase_calls(state.messages):
            state.messages.append(ChatMessageUser(content=CONFIRM_MESSAGE))
            confirms += 1
            state = await generate(state, tool_calls="loop")
        state.store.set(CONFIRMS_KEY, confirms)
        return state

    return solve
