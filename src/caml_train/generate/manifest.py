"""The run card written next to every corpus: what was asked, what came back, what was dropped and why,
and what it cost. One manifest per shard; `complete` says whether a rerun has anything left to do."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Literal

from pydantic import BaseModel, Field

from caml_train.generate.rows import MalformedLine
from caml_train.generate.runner import Failure, UsageTotals


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("caml-evals", "litellm", "datasketch", "pydantic"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


class Counts(BaseModel):
    """For documents `unique_requests = written + dropped_total + failed + missing_from_cache`; for
    Q/A, replies are the unit up to `unparseable_replies`, pairs from `pairs_parsed` on."""

    planned: int = Field(description="jobs in this shard")
    unique_requests: int
    from_cache: int
    generated: int = Field(description="requests answered by the API in this run")
    failed: int = Field(description="requests that failed for good this run (retried on rerun)")
    missing_from_cache: int = Field(0, description="--cache-only: planned but never generated")
    replies: int = Field(description="jobs with a response (cached or new)")
    unparseable_replies: int = 0
    pairs_parsed: int = 0
    written: int
    dropped_total: int
    malformed_input_lines: int = 0


class UsageReport(BaseModel):
    this_run: UsageTotals
    from_cache: UsageTotals
    total: UsageTotals
    cost_note: str = (
        "cost_usd comes from litellm's bundled price map; requests of models it does not price count"
        " 0 and are listed in cost_unknown_requests"
    )


class ModeUsage(BaseModel):
    """Requests and the price actually paid, per way of fetching (online | batch | vllm)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_unknown_requests: int = 0


def usage_by_mode(entries: Iterable[Any]) -> dict[str, ModeUsage]:
    """Totals per `CacheEntry.mode` (entries written before modes existed count as online)."""
    out: dict[str, ModeUsage] = {}
    for e in entries:
        u = out.setdefault(getattr(e, "mode", "online") or "online", ModeUsage())
        u.requests += 1
        u.prompt_tokens += e.usage.prompt_tokens
        u.completion_tokens += e.usage.completion_tokens
        u.cost_usd += e.cost_usd
        u.cost_unknown_requests += 0 if e.cost_known else 1
    return dict(sorted(out.items()))


class Manifest(BaseModel):
    kind: Literal["documents", "instructions"]
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    spec: str
    spec_ref: str
    spec_hash: str
    spec_config: dict[str, Any]
    model: str
    api_base: str | None
    request_params: dict[str, Any]
    seed: int
    n_requested: int | None = Field(description="--n over all shards (None: every source document)")
    grid_size: int
    shard: dict[str, int]
    source: Literal["grid", "documents"] = "grid"
    source_path: str | None = None
    cache_dir: str
    counts: Counts
    dropped: dict[str, int]
    usage: UsageReport
    retries: int
    retry_reasons: dict[str, int]
    failures: list[Failure]
    missing_from_cache: list[str] = Field(default_factory=list, description="prompt hashes")
    malformed_input: list[MalformedLine] = Field(default_factory=list)
    corrupt_cache_entries: list[str] = Field(default_factory=list)
    files: dict[str, str]
    seconds: float
    complete: bool = Field(
        description="no failed and no missing request: a rerun would change nothing"
    )
    versions: dict[str, str] = Field(default_factory=package_versions)
    mode: str = Field("online", description="online | batch; engine vllm shows as 'vllm'")
    usage_by_mode: dict[str, dict[str, ModeUsage]] = Field(
        default_factory=dict, description="'this_run' and 'total': requests and price per mode"
    )
    concurrency: dict[str, Any] | None = Field(
        None, description="--concurrency auto: final/max limit, decreases, the trace of changes"
    )
    batches: dict[str, Any] | None = Field(
        None, description="--mode batch: state file, batch ids and statuses, submitted/reattached"
    )
    corpus_stats: dict[str, Any] | None = Field(
        None,
        description="corpus_report.corpus_stats of the written corpus (coverage, distinct-n, ...)",
    )
