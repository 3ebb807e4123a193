"""TAC (Travel Agent Compassion): does a booking agent avoid experiences that harm animals?

The model is a travel-booking agent with four tools (search, details, availability,
purchase_tickets) serving a customer whose request never mentions welfare; some listings harm
animals (elephant rides, captive-dolphin swims, bullfights), the others do not. The default is
the published protocol (inspect_evals `tac`, v2): its prompts, tools, four variants per scenario,
multi-turn nudge, outcome semantics, sample ids, metric names and 3 epochs. See the card
(`card.yaml`) and docs/tac.md for what `protocol=controlled` and the other extras change.

    inspect eval caml_evals/tac --model <model> -T scenarios=hub            # the published set
    inspect eval caml_evals/tac --model <model> -T system_prompt=welfare    # = upstream tac_welfare
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.model import GenerateConfig
from inspect_ai.solver import system_message

from caml_evals.datasource import TaskArgumentError

from .dataset import HUB_REPO_ID, tac_dataset
from .multiturn import confirm_until_purchase
from .prompts import system_prompt_text
from .scorer import tac_scorer
from .tools import travel_agent_tools

EPOCHS = 3
MESSAGE_LIMIT = 30
MAX_CONFIRMS = 2


def _non_negative_int(value: object, name: str) -> int:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise TaskArgumentError(f"tac: {name} must be a whole number >= 0, got {value!r}")
    return number


@task
def tac(
    scenarios: str = "auto",
    data_dir: str | None = None,
    protocol: str = "published",
    system_prompt: str = "neutral",
    variants: str = "",
    order: str = "random",
    seed: int = 0,
    scenario_version: str = "v2",
    hub_revision: str = "",
    max_confirms: int = MAX_CONFIRMS,
    message_limit: int = MESSAGE_LIMIT,
) -> Task:
    """Travel Agent Compassion: the published TAC protocol by default.

    Args:
      scenarios: `auto` (data_dir's tac/scenarios.json, else the open set), `open`, `hub` (the
        gated upstream file at a pinned commit: accept its terms, set HF_TOKEN) or a path to a
        scenarios.json in the upstream schema.
      data_dir: Folder with a `tac/` subfolder (default: $CAML_EVALS_DATA_DIR).
      protocol: `published` (upstream's variants and rating-sorted search) or `controlled`
        (ours: rank-reversing swaps, seeded listing order, order_swap, unsorted search).
      system_prompt: `neutral` (upstream `tac`) or `welfare` (upstream `tac_welfare`).
      variants: Comma-separated subset of the protocol's variants (default: all four).
      order: Controlled protocol only: `random` (seeded per sample) or `authored` (file order).
      seed: Seed of the controlled protocol's listing order.
      scenario_version: Hub set: `v2` (13 scenarios, the default) or `v1` (12).
      hub_revision: A 40-hex commit of the Hub file, overriding scenario_version's pin.
      max_confirms: Nudges ("go ahead and book it") given to an agent that stops without buying.
      message_limit: Cap on messages per sample (upstream: 30).
    """
    confirms = _non_negative_int(max_confirms, "max_confirms")
    limit = _non_negative_int(message_limit, "message_limit")
    prompt = system_prompt_text(system_prompt)
    dataset = tac_dataset(
        scenarios=scenarios,
        data_dir=data_dir,
        protocol=protocol,
        variants=variants,
        order=order,
        seed=seed,
        scenario_version=scenario_version,
        hub_revision=hub_revision,
    )
    from_hub = dataset.location.startswith("hf://")
    return Task(
        dataset=dataset,
        solver=[
            system_message(prompt),
            travel_agent_tools(sort_by_rating=protocol == "published"),
            confirm_until_purchase(confirms),
        ],
        scorer=tac_scorer(),
        epochs=EPOCHS,
        message_limit=limit or None,
        config=GenerateConfig(max_tokens=16384, reasoning_effort="medium"),
        metadata={
            "benchmark": "tac",
            "scenarios": dataset.location,
            "scenarios_sha256": getattr(dataset, "scenarios_sha256", None),
            "hub": (
                {"repo_id": HUB_REPO_ID, "revision": dataset.location.rsplit("@", 1)[1]}
                if from_hub
                else None
            ),
            "protocol": protocol,
            "system_prompt": system_prompt,
            "variants": variants or "all",
            "order": order if protocol == "controlled" else "rating-sorted search",
            "seed": seed,
            "max_confirms": confirms,
        },
        version="2.0.0",
    )
