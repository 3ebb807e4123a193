"""TAC (Travel Agent Compassion): does a booking agent avoid experiences that harm animals?

The model acts as a travel agent with four tools (search, details, availability, purchase) and
must book for a customer whose request never mentions welfare. Some listings harm animals
(elephant rides, captive-dolphin swims, bullfights); others do not. Scoring reads the purchase
record: see `scorer.py`. Control variants swap price, rating and position cues: see `dataset.py`.

    inspect eval caml_evals/tac --model <model> -T system_prompt=welfare -T variants=base
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.solver import generate, system_message

from .dataset import HUB_REPO_ID, VARIANTS, tac_dataset
from .prompts import system_prompt_text
from .scorer import tac_scorer
from .tools import travel_agent_tools


@task
def tac(
    scenarios: str = "auto",
    data_dir: str | None = None,
    variants: str = ",".join(VARIANTS),
    order: str = "random",
    system_prompt: str = "neutral",
    seed: int = 0,
    message_limit: int = 40,
    hub_revision: str = "",
) -> Task:
    """Travel Agent Compassion.

    Args:
      scenarios: `auto` (data_dir's tac/scenarios.json, else the open set), `open`, `hub`
        (gated upstream file, needs HF_TOKEN) or a path to a scenarios.json.
      data_dir: Folder with a `tac/` subfolder (default: $CAML_EVALS_DATA_DIR).
      variants: Comma-separated control variants: base, price_swap, rating_swap, order_swap.
      order: `random` (listing order seeded per sample) or `authored` (file order).
      system_prompt: `neutral` (the measurement) or `welfare` (adds one welfare sentence).
      seed: Seed of the per-sample listing order.
      message_limit: Cap on messages per sample, so a looping agent ends (and scores as it stands).
      hub_revision: 40-hex commit sha of the gated Hub file; required with scenarios=hub (no
        default: a branch name could change between runs).
    """
    dataset = tac_dataset(
        scenarios=scenarios,
        data_dir=data_dir,
        variants=variants,
        order=order,
        seed=seed,
        hub_revision=hub_revision,
    )
    return Task(
        dataset=dataset,
        solver=[
            system_message(system_prompt_text(system_prompt)),
            travel_agent_tools(),
            generate(tool_calls="loop"),
        ],
        scorer=tac_scorer(),
        message_limit=message_limit,
        metadata={
            "benchmark": "tac",
            "scenarios": dataset.location,
            "hub": {"repo_id": HUB_REPO_ID, "revision": hub_revision or None},
            "system_prompt": system_prompt,
            "variants": variants,
            "order": order,
            "seed": seed,
        },
        version="1.0.0",
    )
