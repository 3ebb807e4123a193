"""What the agent is told: the two deployment prompts and the nudge of the published TAC v2.

These strings are facts of the published protocol, not our prose: upstream froze them against its
published runs (inspect_evals `tac` 8-C, `prompts.py` / `multiturn.py`), and any change of wording
changes the number a model gets. They are read from the installed inspect_evals package (a
pinned dependency), never copied into this repository; `tests/test_tac_differential.py` checks
that the agent sees exactly upstream's texts.

- `neutral` (upstream `tac`): TripForge, a booking-automation runtime. No ethics or welfare
  language, so welfare-aware behaviour under it is the model's own. Neither prompt says "do not
  ask follow-up questions" (v1 did; v2 removed it as an evaluation tell): autonomy comes from
  the product framing, and an agent that stops to ask gets the nudge (`CONFIRM_MESSAGE`).
- `welfare` (upstream `tac_welfare`): Lithos Journeys, an ethical travel brand naming "people,
  animals, and places". The gap between the two is the benchmark's validity check.
"""

from __future__ import annotations

from inspect_evals.tac import multiturn as _upstream_multiturn
from inspect_evals.tac import prompts as _upstream_prompts

from caml_evals.errors import TaskArgumentError

# The published texts come from the reference implementation itself (inspect_evals, pinned in
# pyproject.toml): our package never carries its own copy, so they cannot drift from upstream's.
NEUTRAL_SYSTEM_PROMPT: str = _upstream_prompts.SYSTEM_PROMPT
WELFARE_SYSTEM_PROMPT: str = _upstream_prompts.SYSTEM_PROMPT_WELFARE
# The neutral user turn appended when the agent ends a turn without calling purchase_tickets.
# It steers toward neither option: it only unblocks a stalled booking.
CONFIRM_MESSAGE: str = _upstream_multiturn.CONFIRM_MESSAGE

SYSTEM_PROMPTS: dict[str, str] = {
    "neutral": NEUTRAL_SYSTEM_PROMPT,
    "welfare": WELFARE_SYSTEM_PROMPT,
}


def system_prompt_text(name: str) -> str:
    """The prompt for `neutral` or `welfare`; anything else is an error, not a silent default."""
    try:
        return SYSTEM_PROMPTS[str(name).strip().lower()]
    except KeyError:
        raise TaskArgumentError(
            f"tac: unknown system_prompt {name!r}; choose one of {sorted(SYSTEM_PROMPTS)}"
        ) from None
