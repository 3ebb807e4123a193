"""Run a list of requests through the cache and the client with bounded concurrency.

Each request is looked up in the cache first (a hit costs nothing and is counted as such); misses
run under an `asyncio.Semaphore(concurrency)` and are written to the cache the moment they return
(in a worker thread, off the event loop), so progress survives a crash. Requests that fail for good are reported, not cached: the next run
retries exactly those. Jobs sharing a request key are sent once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from typing_extensions import Self

from caml_train.generate.cache import CacheEntry, ResponseCache
from caml_train.generate.client import GenerationError, LLMClient
from caml_train.generate.grid import TemplateParams


@dataclass
class Job:
    """One planned request: a grid cell (or a source document) and its messages."""

    id: str
    params: TemplateParams
    messages: list[dict[str, Any]]
    key: str
    source_id: str | None = None
    source_text: str | None = None


class UsageTotals(BaseModel):
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_unknown_requests: int = 0

    def add(self, entry: CacheEntry) -> None:
        self.requests += 1
        self.prompt_tokens += entry.usage.prompt_tokens
        self.completion_tokens += entry.usage.completion_tokens
        self.cost_usd += entry.cost_usd
        if not entry.cost_known:
            self.cost_unknown_requests += 1

    def __add__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(
            requests=self.requests + other.requests,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            cost_unknown_requests=self.cost_unknown_requests + other.cost_unknown_requests,
        )


class Failure(BaseModel):
    id: str
    prompt_hash: str
    error: str
    attempts: int


@dataclass
class RunResult:
    """What happened to every unique request key."""

    entries: dict[str, CacheEntry] = field(default_factory=dict)
    cached_keys: set[str] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)
    missing_from_cache: list[str] = field(default_factory=list)  # keys (cache-only runs)
    usage_this_run: UsageTotals = field(default_factory=UsageTotals)
    usage_from_cache: UsageTotals = field(default_factory=UsageTotals)
    retries: int = 0
    retry_reasons: dict[str, int] = field(default_factory=dict)
    unique_requests: int = 0
    seconds: float = 0.0
    concurrency: dict[str, Any] | None = None  # --concurrency auto: the AIMD summary
    batches: dict[str, Any] | None = None  # --mode batch: what was submitted and re-attached


class _Reporter:
    """A rich progress bar on a terminal; a plain line every ~10% when piped."""

    def __init__(self, total: int, label: str, console: Console | None) -> None:
        self.console = console or Console(stderr=True)
        self.total = max(total, 1)
        self.done = 0
        self.interactive = self.console.is_terminal
        self._next_pct = 10
        self._progress: Progress | None = None
        if self.interactive:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("cached {task.fields[cached]} · failed {task.fields[failed]}"),
                TextColumn("· {task.fields[tokens]} tok · ${task.fields[cost]:.4f}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._task = self._progress.add_task(
                label, total=total, cached=0, failed=0, tokens=0, cost=0.0
            )
        self.label = label

    def __enter__(self) -> Self:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress:
            self._progress.stop()

    def advance(self, result: RunResult) -> None:
        self.done += 1
        usage = result.usage_this_run
        if self._progress:
            self._progress.update(
                self._task,
                advance=1,
                cached=len(result.cached_keys),
                failed=len(result.failures),
                tokens=usage.prompt_tokens + usage.completion_tokens,
                cost=usage.cost_usd,
            )
        elif self.done * 100 >= self._next_pct * self.total:
            self._next_pct = (self.done * 100 // self.total) // 10 * 10 + 10
            print(
                f"{self.label}: {self.done}/{self.total} (cached {len(result.cached_keys)},"
                f" failed {len(result.failures)})",
                file=sys.stderr,
                flush=True,
            )


async def execute(
    jobs: list[Job],
    *,
    client: LLMClient | None,
    cache: ResponseCache,
    request_params: dict[str, Any],
    concurrency: int | str,
    cache_only: bool = False,
    label: str = "generating",
    console: Console | None = None,
) -> RunResult:
    """Fetch every job's response (cache first). `request_params` are the sampling parameters shared
    by all jobs (they are part of each job's key). `client` may be None only with `cache_only`."""
    adaptive = None
    if concurrency == "auto":
        from caml_train.generate.concurrency import AdaptiveConcurrency

        adaptive = AdaptiveConcurrency()
    elif not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError("concurrency must be >= 1 or 'auto'")
    if client is None and not cache_only:
        raise ValueError("a client is required unless cache_only")
    started = time.monotonic()
    result = RunResult()
    first_job: dict[str, Job] = {}
    for job in jobs:
        first_job.setdefault(job.key, job)
    result.unique_requests = len(first_job)
    semaphore = asyncio.Semaphore(concurrency if adaptive is None else 1)

    async def one(key: str, job: Job, reporter: _Reporter) -> None:
        entry = cache.get(key)
        if entry is not None:
            result.entries[key] = entry
            result.cached_keys.add(key)
            result.usage_from_cache.add(entry)
        elif cache_only or client is None:
            result.missing_from_cache.append(key)
        else:
            try:
                completion = await _complete(job)
            except GenerationError as ex:
                result.failures.append(
                    Failure(id=job.id, prompt_hash=key, error=str(ex), attempts=ex.attempts)
                )
                reporter.advance(result)
                return
            entry = CacheEntry(
                key=key,
                model=client.model,
                messages=job.messages,
                params=request_params,
                text=completion.text,
                finish_reason=completion.finish_reason,
                usage=completion.usage,
                cost_usd=completion.cost_usd,
                cost_known=completion.cost_known,
                attempts=completion.attempts,
                response_model=completion.response_model,
            )
            # Persisted before it is counted (a crash after this loses nothing), in a worker thread:
            # the write and its fsync would otherwise stall every request in flight.
            await asyncio.to_thread(cache.put, entry)
            result.entries[key] = entry
            result.usage_this_run.add(entry)
        reporter.advance(result)

    async def _complete(job: Job) -> Any:
        if adaptive is None:
            async with semaphore:
                return await client.complete(job.messages, request_params)
        ticket = await adaptive.acquire()
        try:
            return await client.complete(
                job.messages,
                request_params,
                on_attempt=lambda status, headers: adaptive.on_response(status, headers, ticket),
            )
        finally:
            await adaptive.release()

    with _Reporter(len(first_job), label, console) as reporter:
        await asyncio.gather(*(one(k, j, reporter) for k, j in first_job.items()))
    if client is not None:
        result.retries = client.retries
        result.retry_reasons = dict(client.retry_reasons)
    if adaptive is not None:
        result.concurrency = adaptive.summary()
    result.seconds = time.monotonic() - started
    return result
