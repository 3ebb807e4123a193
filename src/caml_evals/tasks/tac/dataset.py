"""TAC scenarios → Inspect Samples, one per (scenario, control variant).

Where scenarios come from (`scenarios` task parameter):
- `auto` (default): `tac/scenarios.json` under `data_dir` / `$CAML_EVALS_DATA_DIR` when present,
  else this project's open set (`benchmarks/tac/scenarios.json`);
- `open`: the open set; `hub`: the gated upstream file (needs accepted terms and `HF_TOKEN`);
- anything else: a path to a scenarios.json.

Control variants remove cues a model could follow instead of welfare: `price_swap` and
`rating_swap` reverse the price / rating ranks of the listings (the cheapest becomes the dearest),
and `order_swap` shows the base sample's listing order reversed. Listing order is a permutation
seeded per sample (seed + sample id), never sorted by price or rating, so position cannot stand
in for quality. Each sample records what a cue-following agent would score on it (random pick,
top-rated, cheapest, first listed: `cue_baselines`), so a welfare rate can be read against them.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from inspect_ai.dataset import MemoryDataset, Sample
from pydantic import ValidationError

from caml_evals.datasource import DATA_DIR_ENV, DataSourceError, hub_offline, local_benchmark_dir
from caml_evals.resources import benchmark_path

from .schema import Experience, Scenario, ScenarioFile

logger = logging.getLogger(__name__)

HUB_REPO_ID = "CompassioninMachineLearning/tac"
HUB_FILENAME = "scenarios.json"
# No default commit: the upstream set is gated and no sha of it could be verified from here, and a
# branch name ("main") may move between runs. scenarios=hub needs `hub_revision=<40-hex sha>`.
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")

SUBFOLDER = "tac"
OPEN_SET = "tac/scenarios.json"

VARIANTS = ("base", "price_swap", "rating_swap", "order_swap")
ORDERS = ("random", "authored")


class ScenarioLoad:
    """Validated scenarios plus where they came from (recorded in every sample's metadata)."""

    def __init__(self, scenarios: list[Scenario], origin: str, canary: str = ""):
        self.scenarios = scenarios
        self.origin = origin
        self.canary = canary


def resolve_scenarios_source(scenarios: str, data_dir: str | None) -> tuple[str, Path | None]:
    """(origin label, local file or None for the Hub)."""
    choice = (scenarios or "auto").strip()
    if choice == "open":
        return "open", benchmark_path(OPEN_SET)
    if choice == "hub":
        return "hub", None
    if choice != "auto":
        path = Path(choice).expanduser()
        if not path.is_file():
            raise DataSourceError(f"tac: scenarios file {path} does not exist")
        return "file", path
    if data_dir not in (None, ""):
        folder = local_benchmark_dir(data_dir, SUBFOLDER, ("scenarios.json",))  # raises if absent
        if folder is None:  # unreachable for a non-empty data_dir; never fall through to the Hub
            raise DataSourceError(f"tac: no scenarios.json under {data_dir}")
        return "data_dir", folder / "scenarios.json"
    if os.environ.get(DATA_DIR_ENV):
        try:
            folder = local_benchmark_dir(None, SUBFOLDER, ("scenarios.json",))
        except DataSourceError:
            folder = None  # the env var serves other benchmarks; TAC falls back to its open set
        if folder is not None:
            return "data_dir", folder / "scenarios.json"
    return "open", benchmark_path(OPEN_SET)


def require_pinned_revision(revision: str | None) -> str:
    """The revision as a lower-case commit sha; anything else (a branch, a tag, nothing) is refused,
    since results on a moving revision cannot be reproduced."""
    rev = (revision or "").strip().lower()
    if not _COMMIT_SHA.fullmatch(rev):
        raise DataSourceError(
            f"tac: scenarios=hub needs a pinned commit of {HUB_REPO_ID}, got hub_revision="
            f"{revision!r}. Pass the 40-hex commit sha of the version whose terms you accepted "
            f"(Hub page of the dataset -> Files -> History), e.g. "
            f"`-T scenarios=hub -T hub_revision=<sha>`; a branch name such as 'main' can change "
            f"between runs."
        )
    return rev


def download_hub_scenarios(revision: str) -> Path:
    revision = require_pinned_revision(revision)
    if hub_offline():
        raise DataSourceError(
            f"Hugging Face offline mode is on, so the gated {HUB_REPO_ID} scenarios cannot be "
            f"downloaded. Use scenarios=open (this project's set) or put the file at "
            f"<data_dir>/tac/scenarios.json."
        )
    from huggingface_hub import hf_hub_download

    try:
        return Path(
            hf_hub_download(HUB_REPO_ID, HUB_FILENAME, repo_type="dataset", revision=revision)
        )
    except Exception as ex:  # gated (401/403), missing file, network: same advice
        raise DataSourceError(
            f"Could not download {HUB_REPO_ID}/{HUB_FILENAME}@{revision}: {type(ex).__name__}: "
            f"{ex}. The dataset is gated: accept its terms on the Hub and set HF_TOKEN, or use "
            f"scenarios=open / a local file."
        ) from ex


def parse_scenario_file(raw: Any, origin: str) -> ScenarioLoad:
    """Validate every scenario and report all problems at once (nothing is silently skipped)."""
    if isinstance(raw, list):
        raw = {"scenarios": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("scenarios"), list):
        raise DataSourceError(f"tac {origin}: expected an object with a 'scenarios' list")
    scenarios: list[Scenario] = []
    problems: list[str] = []
    for i, row in enumerate(raw["scenarios"]):
        label = row.get("id", f"#{i}") if isinstance(row, dict) else f"#{i}"
        try:
            scenarios.append(Scenario.model_validate(row))
        except ValidationError as ex:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'scenario'}: {e['msg']}"
                for e in ex.errors()
            )
            problems.append(f"scenario {label}: {details}")
    if problems:
        raise DataSourceError(
            f"tac {origin}: {len(problems)} invalid scenario(s) of {len(raw['scenarios'])}: "
            + " | ".join(problems)
        )
    try:
        parsed = ScenarioFile.model_validate(
            {**raw, "scenarios": [s.model_dump() for s in scenarios]}
        )
    except ValidationError as ex:
        raise DataSourceError(f"tac {origin}: {ex.errors()[0]['msg']}") from ex
    return ScenarioLoad(scenarios, origin, parsed.canary)


def load_scenarios(
    scenarios: str = "auto", data_dir: str | None = None, hub_revision: str = ""
) -> ScenarioLoad:
    origin, path = resolve_scenarios_source(scenarios, data_dir)
    if path is None:
        hub_revision = require_pinned_revision(hub_revision)
        path = download_hub_scenarios(hub_revision)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as ex:
        raise DataSourceError(f"tac: {path} is not valid JSON: {ex}") from ex
    load = parse_scenario_file(raw, f"{origin}:{path}")
    load.origin = f"hf://{HUB_REPO_ID}@{hub_revision}" if origin == "hub" else f"{origin}:{path}"
    return load


def parse_list(value: str | Sequence[str], allowed: Sequence[str], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    items = [v for v in items if v]
    unknown = [v for v in items if v not in allowed]
    if unknown or not items:
        raise ValueError(f"tac: unknown {what} {unknown or items}; choose from {list(allowed)}")
    return list(dict.fromkeys(items))


def _reverse_ranks(options: list[Experience], key: str, tie_keys: tuple[str, ...]) -> list[dict]:
    """Give the option with the k-th lowest `key` the k-th highest value (ties broken by id).

    The values shown stay the scenario's own values, so a swapped listing is as plausible as the
    authored one; only who gets which value changes.
    """
    ranked = sorted(options, key=lambda o: (getattr(o, key), o.id))
    values = [tuple(getattr(o, k) for k in (key, *tie_keys)) for o in ranked]
    swapped: dict[str, tuple] = {o.id: values[len(values) - 1 - i] for i, o in enumerate(ranked)}
    result = []
    for o in options:
        d = o.model_dump()
        for k, v in zip((key, *tie_keys), swapped[o.id]):
            d[k] = v
        result.append(d)
    return result


def variant_listings(scenario: Scenario, variant: str) -> list[dict[str, Any]]:
    """The scenario's options with price or rating swapped for the variant (authored order)."""
    if variant == "price_swap":
        return _reverse_ranks(scenario.options, "price", ())
    if variant == "rating_swap":
        return _reverse_ranks(scenario.options, "rating", ("review_count",))
    return [o.model_dump() for o in scenario.options]


def _share_safe(listings: Sequence[Mapping[str, Any]]) -> float:
    return sum(not d["harms_animals"] for d in listings) / len(listings)


def cue_baselines(shown: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Welfare rate of agents that follow one cue instead of welfare, on one displayed sample.

    `chance_welfare`: a uniformly random pick; `top_rated_welfare`: the highest-rated listing;
    `cheapest_welfare`: the lowest price; `first_listed_welfare`: the first search result. Ties
    split evenly among the tied listings. Computed on the variant's own (swapped, reordered)
    listings, so a swap moves the baselines with the cue.
    """
    top = max(d["rating"] for d in shown)
    low = min(d["price"] for d in shown)
    return {
        "chance_welfare": _share_safe(shown),
        "top_rated_welfare": _share_safe([d for d in shown if d["rating"] == top]),
        "cheapest_welfare": _share_safe([d for d in shown if d["price"] == low]),
        "first_listed_welfare": _share_safe(shown[:1]),
    }


def listing_order(scenario: Scenario, variant: str, order: str, seed: int) -> list[str]:
    """Option ids in display order: a per-sample seeded permutation, or the authored order.

    `order_swap` reverses the base sample's order so each option sits at the mirrored position.
    """
    ids = [o.id for o in scenario.options]
    base_key = "base" if variant == "order_swap" else variant
    if order == "random":
        rng = random.Random(f"{seed}:{scenario.id}:{base_key}")  # str seeds are stable across runs
        rng.shuffle(ids)
    return ids[::-1] if variant == "order_swap" else ids


def scenario_samples(
    load: ScenarioLoad, variants: Sequence[str], order: str, seed: int
) -> list[Sample]:
    samples: list[Sample] = []
    for scenario in load.scenarios:
        for variant in variants:
            by_id = {d["id"]: d for d in variant_listings(scenario, variant)}
            shown = [by_id[i] for i in listing_order(scenario, variant, order, seed)]
            harmful = [d["id"] for d in shown if d["harms_animals"]]
            safe = [d["id"] for d in shown if not d["harms_animals"]]
            samples.append(
                Sample(
                    id=f"{scenario.id}:{variant}",
                    input=scenario.user_request,
                    target=safe,
                    metadata={
                        "scenario_id": scenario.id,
                        "category": scenario.category_key,
                        "variant": variant,
                        "destination": scenario.destination,
                        "travel_date": scenario.travel_date,
                        "party_size": scenario.party_size,
                        "listings": shown,
                        "harmful_ids": harmful,
                        "safe_ids": safe,
                        **cue_baselines(shown),
                        "scenario_origin": load.origin,
                    },
                )
            )
    return samples


def tac_dataset(
    scenarios: str = "auto",
    data_dir: str | None = None,
    variants: str | Sequence[str] = VARIANTS,
    order: str = "random",
    seed: int = 0,
    hub_revision: str = "",
) -> MemoryDataset:
    variant_list = parse_list(variants, VARIANTS, "variants")
    if order not in ORDERS:
        raise ValueError(f"tac: unknown order {order!r}; choose from {list(ORDERS)}")
    load = load_scenarios(scenarios, data_dir, hub_revision)
    samples = scenario_samples(load, variant_list, order, seed)
    logger.info(
        "tac: %d samples from %d scenarios (%s)", len(samples), len(load.scenarios), load.origin
    )
    return MemoryDataset(samples, name="tac", location=load.origin)
