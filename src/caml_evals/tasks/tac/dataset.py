"""TAC scenarios -> Inspect Samples: four variants per scenario, under one of two protocols.

Where scenarios come from (`scenarios` task parameter):
- `auto` (default): `tac/scenarios.json` under `data_dir` / `$CAML_EVALS_DATA_DIR` when present,
  else this project's open set (`benchmarks/tac/scenarios.json`);
- `open`: the open set; `hub`: the gated upstream file at a pinned commit (`scenario_version`
  v2, the default, or v1; `hub_revision` overrides the pin), served from the HF cache offline;
- anything else: a path to a scenarios.json in the upstream schema (`schema.py`).

Protocols (`protocol` task parameter):
- `published` (default, upstream's): variants `base`, `price_swap` and `rating_swap` (the price or
  rating of the FIRST harmful listing is exchanged with that of the safe listing highest on that
  field) and `reversed` (the listing list reversed; the search still sorts by rating, so this
  reorders ties only). Sample ids `<scenario>_<variant>`, as upstream.
- `controlled` (ours): `price_swap` / `rating_swap` reverse the whole price / rating ranking (the
  cheapest becomes the dearest), listing order is a permutation seeded per sample (seed +
  scenario + variant, `order=random`) or the file's (`order=authored`), `order_swap` mirrors the
  base order, and the search shows listings in that order instead of sorting them, so position
  is a controlled variable rather than a proxy for rating.
Both record what a cue-following agent would score on each sample (`cue_baselines`).
"""

from __future__ import annotations

import hashlib
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

from caml_evals.datasource import (
    DATA_DIR_ENV,
    DataSourceError,
    TaskArgumentError,
    hub_offline,
    local_benchmark_dir,
)
from caml_evals.resources import benchmark_path

from .schema import Scenario, ScenarioFile
from .tools import search_matches

logger = logging.getLogger(__name__)

HUB_REPO_ID = "CompassioninMachineLearning/tac"
HUB_FILENAME = "scenarios.json"
TERMS_PAGE = f"https://huggingface.co/datasets/{HUB_REPO_ID}"
# Commits of the gated file, as inspect_evals pins them: v2 = 13 scenarios (task version 8-C,
# with the BIG-bench canary and the fixed hawaii_dolphin_swim locations), v1 = the 12-scenario set.
HUB_REVISIONS = {
    "v2": "560d2461b16a0ccb5f5dabc6b54e8cc236f69de3",
    "v1": "d0448afe0926a160a3a3c92d82b26d6ccb2d2f00",
}
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")

SUBFOLDER = "tac"
OPEN_SET = "tac/scenarios.json"

PROTOCOLS = ("published", "controlled")
VARIANTS: dict[str, tuple[str, ...]] = {
    "published": ("base", "price_swap", "rating_swap", "reversed"),
    "controlled": ("base", "price_swap", "rating_swap", "order_swap"),
}
ORDERS = ("random", "authored")


class ScenarioLoad:
    """Validated scenarios plus where they came from (recorded in every sample's metadata)."""

    def __init__(self, scenarios: list[Scenario], origin: str, canary: str = "", sha256: str = ""):
        self.scenarios = scenarios
        self.origin = origin
        self.canary = canary
        self.sha256 = sha256  # of the file as read, so a log names exactly what it ran on


# --- where the file comes from ------------------------------------------------------------------


def hub_revision_for(scenario_version: str, hub_revision: str = "") -> str:
    """The commit to download: an explicit 40-hex `hub_revision`, else the version's pin."""
    if hub_revision not in (None, ""):
        rev = str(hub_revision).strip().lower()
        if not _COMMIT_SHA.fullmatch(rev):
            raise TaskArgumentError(
                f"tac: hub_revision must be a 40-hex commit sha of {HUB_REPO_ID}, got "
                f"{hub_revision!r} (a branch or tag can move between runs)"
            )
        return rev
    version = str(scenario_version or "").strip().lower()
    if version not in HUB_REVISIONS:
        raise TaskArgumentError(
            f"tac: unknown scenario_version {scenario_version!r}; choose from {list(HUB_REVISIONS)}"
        )
    return HUB_REVISIONS[version]


def download_hub_scenarios(revision: str) -> Path:
    """The gated file at `revision`, from the HF cache when it is there (also offline)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        return Path(
            hf_hub_download(HUB_REPO_ID, HUB_FILENAME, repo_type="dataset", revision=revision)
        )
    except (GatedRepoError, RepositoryNotFoundError) as ex:
        raise DataSourceError(_refused(revision, type(ex).__name__)) from ex
    except LocalEntryNotFoundError as ex:
        why = "offline mode is on" if hub_offline() else "the Hub could not be reached"
        raise DataSourceError(
            f"tac: {HUB_REPO_ID}/{HUB_FILENAME}@{revision[:10]} is not in the local HF cache and "
            f"{why}. Download it once online (accept the terms at {TERMS_PAGE}, set HF_TOKEN), "
            f"or pass -T scenarios=<path to scenarios.json> / put it at <data_dir>/tac/."
        ) from ex
    except HfHubHTTPError as ex:
        status = getattr(getattr(ex, "response", None), "status_code", None)
        if status in (401, 403):
            raise DataSourceError(_refused(revision, f"HTTP {status}")) from ex
        raise DataSourceError(
            f"tac: could not download {HUB_REPO_ID}/{HUB_FILENAME}@{revision[:10]}: "
            f"{type(ex).__name__}: {str(ex).splitlines()[0] if str(ex) else ''}"
        ) from ex


def _refused(revision: str, why: str) -> str:
    return (
        f"tac: the Hub refused {HUB_REPO_ID}/{HUB_FILENAME}@{revision[:10]} ({why}). The dataset "
        f"is gated: accept its terms at {TERMS_PAGE} with your account, then set HF_TOKEN to a "
        f"token of that account (export HF_TOKEN=hf_...). Or use -T scenarios=open / a local file."
    )


def resolve_scenarios_source(
    scenarios: str, data_dir: str | None, revision: str
) -> tuple[str, Path]:
    """(origin label, local file), downloading the Hub file when asked for."""
    choice = str(scenarios or "auto").strip()
    if choice == "open":
        return f"open:{OPEN_SET}", benchmark_path(OPEN_SET)
    if choice == "hub":
        return f"hf://{HUB_REPO_ID}@{revision}", download_hub_scenarios(revision)
    if choice != "auto":
        path = Path(choice).expanduser()
        if not path.is_file():
            raise DataSourceError(
                f"tac: scenarios file {choice!r} does not exist ({path.resolve()}); pass "
                f"scenarios=auto|open|hub or the path of a scenarios.json"
            )
        return f"file:{path}", path
    if data_dir not in (None, ""):
        folder = local_benchmark_dir(data_dir, SUBFOLDER, (HUB_FILENAME,))  # raises if absent
        assert folder is not None  # a non-empty data_dir never falls through to the open set
        return f"data_dir:{folder / HUB_FILENAME}", folder / HUB_FILENAME
    if os.environ.get(DATA_DIR_ENV):
        try:
            folder = local_benchmark_dir(None, SUBFOLDER, (HUB_FILENAME,))
        except DataSourceError:
            folder = None  # the env var serves other benchmarks; TAC falls back to its open set
        if folder is not None:
            return f"data_dir:{folder / HUB_FILENAME}", folder / HUB_FILENAME
    return f"open:{OPEN_SET}", benchmark_path(OPEN_SET)


# --- reading and validating ---------------------------------------------------------------------


def read_scenario_file(path: Path) -> Any:
    """The parsed JSON, or one line saying why it cannot be read."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark is not content
    except UnicodeDecodeError as ex:
        raise DataSourceError(
            f"tac: {path} is not UTF-8 text (byte {ex.start}: {ex.reason}); save it as UTF-8"
        ) from ex
    except OSError as ex:
        raise DataSourceError(f"tac: cannot read {path}: {ex.strerror or ex}") from ex
    try:
        return json.loads(text)
    except json.JSONDecodeError as ex:
        raise DataSourceError(f"tac: {path} is not valid JSON: {ex}") from ex


def _where(row: Mapping[str, Any], loc: Sequence[Any]) -> str:
    """`experiences[2] (PKT-2218).price` from a pydantic error location."""
    parts: list[str] = []
    for i, p in enumerate(loc):
        if isinstance(p, int) and parts:
            parts[-1] += f"[{p}]"
            if loc[:i] == ("experiences",):
                exps = row.get("experiences")
                if isinstance(exps, list) and p < len(exps) and isinstance(exps[p], dict):
                    parts[-1] += f" ({exps[p].get('id', '?')})"
        else:
            parts.append(str(p))
    return ".".join(parts) or "scenario"


def parse_scenario_file(raw: Any, where: str) -> ScenarioLoad:
    """Validate every scenario and report all problems at once (nothing is silently skipped).

    Non-finite numbers (`NaN`, `Infinity`, which `json` accepts) are refused with the scenario
    and field named: an infinite price would flip the cheapest-option baseline.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("scenarios"), list):
        raise DataSourceError(
            f"tac {where}: expected an object with a 'scenarios' list (the upstream schema: "
            f'{{"scenarios": [{{"id", "category", "input", "harmful_ids", "safe_ids", '
            f'"experiences"}}]}})'
        )
    scenarios: list[Scenario] = []
    problems: list[str] = []
    for i, row in enumerate(raw["scenarios"]):
        label = row.get("id", f"#{i}") if isinstance(row, dict) else f"#{i}"
        try:
            scenarios.append(Scenario.model_validate(row))
        except ValidationError as ex:
            context = row if isinstance(row, dict) else {}
            details = "; ".join(
                f"{_where(context, e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                for e in ex.errors()
            )
            problems.append(f"scenario {label}: {details}")
    if problems:
        raise DataSourceError(
            f"tac {where}: {len(problems)} invalid scenario(s) of {len(raw['scenarios'])}: "
            + " | ".join(problems)
        )
    try:
        parsed = ScenarioFile.model_validate({**raw, "scenarios": scenarios})
    except ValidationError as ex:
        raise DataSourceError(f"tac {where}: {ex.errors()[0]['msg']}") from ex
    return ScenarioLoad(list(parsed.scenarios), where, parsed.canary)


def load_scenarios(
    scenarios: str = "auto",
    data_dir: str | None = None,
    scenario_version: str = "v2",
    hub_revision: str = "",
) -> ScenarioLoad:
    revision = hub_revision_for(scenario_version, hub_revision)
    origin, path = resolve_scenarios_source(scenarios, data_dir, revision)
    load = parse_scenario_file(read_scenario_file(path), str(path))
    load.origin = origin
    load.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return load


# --- variants -----------------------------------------------------------------------------------


def parse_list(value: str | Sequence[str], allowed: Sequence[str], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    items = [v for v in items if v]
    unknown = [v for v in items if v not in allowed]
    if unknown or not items:
        raise TaskArgumentError(
            f"tac: unknown {what} {unknown or items!r}; choose from {list(allowed)}"
        )
    return list(dict.fromkeys(items))


def _exchange_with_top_safe(scenario: Scenario, field: str) -> list[dict[str, Any]]:
    """Upstream's swap: the first harmful listing (file order) trades `field` with the safe
    listing whose `field` is highest (the first such, on ties)."""
    listings = [e.model_dump() for e in scenario.experiences]
    harmful = [x for x in listings if x["id"] in scenario.harmful_ids]
    safe = [x for x in listings if x["id"] in scenario.safe_ids]
    h, s = harmful[0], max(safe, key=lambda x: x[field])
    h[field], s[field] = s[field], h[field]
    return listings


def _reverse_ranks(scenario: Scenario, field: str) -> list[dict[str, Any]]:
    """Our swap: the listing with the k-th lowest `field` gets the k-th highest value (ties by
    id); a rating carries its `review_count` along when every listing has one."""
    listings = [e.model_dump() for e in scenario.experiences]
    keys = [field]
    if field == "rating" and all("review_count" in x for x in listings):
        keys.append("review_count")
    ranked = sorted(listings, key=lambda x: (x[field], x["id"]))
    values = [tuple(x[k] for k in keys) for x in ranked]
    new = {x["id"]: values[len(values) - 1 - i] for i, x in enumerate(ranked)}
    for x in listings:
        x.update(zip(keys, new[x["id"]]))
    return listings


def variant_listings(scenario: Scenario, variant: str, protocol: str) -> list[dict[str, Any]]:
    """The scenario's listings for a variant, values swapped, in file order."""
    if variant in ("price_swap", "rating_swap"):
        field = variant.removesuffix("_swap")
        swap = _exchange_with_top_safe if protocol == "published" else _reverse_ranks
        return swap(scenario, field)
    listings = [e.model_dump() for e in scenario.experiences]
    return listings[::-1] if variant == "reversed" else listings


def listing_order(scenario: Scenario, variant: str, order: str, seed: int) -> list[str]:
    """Controlled protocol: ids in display order, a per-sample seeded permutation or the file's.
    `order_swap` reverses the base sample's order so each listing sits at the mirrored position."""
    ids = [e.id for e in scenario.experiences]
    base_key = "base" if variant == "order_swap" else variant
    if order == "random":
        rng = random.Random(f"{seed}:{scenario.id}:{base_key}")  # str seeds are stable across runs
        rng.shuffle(ids)
    return ids[::-1] if variant == "order_swap" else ids


def _share_safe(listings: Sequence[Mapping[str, Any]], safe: set[str]) -> float:
    return sum(x["id"] in safe for x in listings) / len(listings)


def cue_baselines(shown: Sequence[Mapping[str, Any]], safe_ids: Sequence[str]) -> dict[str, float]:
    """Welfare rate of agents that follow one cue instead of welfare, on one displayed sample.

    `chance_welfare`: a uniformly random pick; `top_rated_welfare`: the highest-rated listing;
    `cheapest_welfare`: the lowest price; `first_listed_welfare`: the first search result. Ties
    split evenly among the tied listings. Computed on the variant's own listings in the order a
    search shows them, so a swap moves the baselines with the cue.
    """
    safe = set(safe_ids)
    top = max(x["rating"] for x in shown)
    low = min(x["price"] for x in shown)
    return {
        "chance_welfare": _share_safe(shown, safe),
        "top_rated_welfare": _share_safe([x for x in shown if x["rating"] == top], safe),
        "cheapest_welfare": _share_safe([x for x in shown if x["price"] == low], safe),
        "first_listed_welfare": _share_safe(shown[:1], safe),
    }


def search_order(listings: Sequence[Mapping[str, Any]], protocol: str) -> list[Mapping[str, Any]]:
    """The listings in the order an unfiltered search at the destination returns them."""
    return (
        sorted(listings, key=lambda x: x["rating"], reverse=True)
        if protocol == "published"
        else list(listings)
    )


def scenario_samples(
    load: ScenarioLoad, protocol: str, variants: Sequence[str], order: str, seed: int
) -> list[Sample]:
    samples: list[Sample] = []
    for scenario in load.scenarios:
        for variant in variants:
            listings = variant_listings(scenario, variant, protocol)
            if protocol == "controlled":
                by_id = {x["id"]: x for x in listings}
                listings = [by_id[i] for i in listing_order(scenario, variant, order, seed)]
            samples.append(
                Sample(
                    id=f"{scenario.id}_{variant}",
                    input=scenario.input,
                    metadata={
                        "category": scenario.category,
                        "experiences": listings,
                        "harmful_ids": list(scenario.harmful_ids),
                        "safe_ids": list(scenario.safe_ids),
                        "scenario_id": scenario.id,
                        "variant": variant,
                        "protocol": protocol,
                        **cue_baselines(search_order(listings, protocol), scenario.safe_ids),
                        "scenario_origin": load.origin,
                    },
                )
            )
    return samples


def tac_dataset(
    scenarios: str = "auto",
    data_dir: str | None = None,
    protocol: str = "published",
    variants: str | Sequence[str] = "",
    order: str = "random",
    seed: int = 0,
    scenario_version: str = "v2",
    hub_revision: str = "",
) -> MemoryDataset:
    if protocol not in PROTOCOLS:
        raise TaskArgumentError(
            f"tac: unknown protocol {protocol!r}; choose from {list(PROTOCOLS)}"
        )
    variant_list = parse_list(
        variants or VARIANTS[protocol], VARIANTS[protocol], f"{protocol} variants"
    )
    if order not in ORDERS:
        raise TaskArgumentError(f"tac: unknown order {order!r}; choose from {list(ORDERS)}")
    load = load_scenarios(scenarios, data_dir, scenario_version, hub_revision)
    samples = scenario_samples(load, protocol, variant_list, order, seed)
    logger.info(
        "tac: %d samples from %d scenarios (%s)", len(samples), len(load.scenarios), load.origin
    )
    dataset = MemoryDataset(samples, name="tac", location=load.origin)
    dataset.scenarios_sha256 = load.sha256  # type: ignore[attr-defined]
    return dataset


__all__ = [
    "HUB_REPO_ID",
    "HUB_REVISIONS",
    "PROTOCOLS",
    "TERMS_PAGE",
    "VARIANTS",
    "cue_baselines",
    "load_scenarios",
    "search_matches",
    "tac_dataset",
]
