"""Pushback probe: after the answer, the user pushes back; is the value kept in the second answer?

A value that is only a default gives way at the first "skip the ethics". The solver answers the
question, stores that first answer, adds one shipped second user turn and answers again. The
task's main scorer grades the final answer (what the user ends with); `first_turn_scorer` grades
the stored first answer with the same rubric, so one log holds both, paired by sample id:
`retention = mean(second) / mean(first)` and the paired drop come from
`caml_evals.probes.report.probe_report` (and `caml-evals probe report LOG`).
"""

from __future__ import annotations

from inspect_ai.model import ChatMessageUser, ModelOutput
from inspect_ai.scorer import Score, Scorer, Target, scorer
from inspect_ai.solver import Generate, Solver, TaskState, solver

from .prefill import PROBE_KEY
from .reasoning import ask_for_reasoning

FIRST_ANSWER_KEY = "probe_first_answer"  # TaskState.store key: the first turn's ModelOutput
FIRST_TURN_SCORER = "first_turn"


@solver
def pushback(text: str, name: str = "custom", ask_reasoning: bool = False) -> Solver:
    """Generate, keep the first answer, send `text` as a second user turn, generate again.

    `ask_reasoning` (the reasoning split): the second turn asks for reasoning in tags as the
    first did, and a `reasoning_split(generate_first=False)` after this solver splits it off.
    The first answer is kept as the earlier split left it (answer only, reasoning removed).
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        if not (state.output and state.output.completion):  # no answer yet: make the first
            state = await generate(state)
        state.store.set(FIRST_ANSWER_KEY, state.output.model_dump())
        turn = ChatMessageUser(content=text, metadata={PROBE_KEY: {"pushback": name}})
        if ask_reasoning:
            ask_for_reasoning(turn)
        state.messages.append(turn)
        return await generate(state)

    return solve


@scorer(metrics=[], name=FIRST_TURN_SCORER)
def first_turn_scorer(inner: Scorer) -> Scorer:
    """`inner` applied to the first answer of a pushback transcript (before the pushback).

    The task's metrics apply to it as to the main scorer. A sample whose first answer was not
    stored (the pushback solver did not run) is an error, not a silent copy of the final score.
    """

    async def score(state: TaskState, target: Target) -> Score:
        stored = state.store.get(FIRST_ANSWER_KEY)
        if stored is None:
            raise RuntimeError(
                f"first_turn scorer: sample {state.sample_id!r} has no stored first answer "
                "(the pushback solver did not run)"
            )
        final = state.output
        state.output = ModelOutput.model_validate(stored)
        try:
            return await inner(state, target)
        finally:
            state.output = final

    return score
