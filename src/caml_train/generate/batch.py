"""`--mode batch`: the uncached requests go to the provider's batch API (about half the price).

One runner for every provider; what differs is a small adapter (`batch_adapter.BatchAdapter`):

- `openai/<model>`: the OpenAI Batch API, or any server speaking it at `--api-base`
  (`batch_openai`, the OpenAI SDK; 50,000 requests / 200 MB per batch);
- `anthropic/<model>`: Anthropic Message Batches (`batch_anthropic`, HTTP; 100,000 requests /
  256 MB per batch);
- `gemini/<model>`: the Gemini Developer API's batch mode (`batch_gemini`, litellm; 2 GB per input
  file).

Each chunk of requests (within the provider's request and byte limits) is written to a local JSONL
file in the provider's input format, then submitted as one batch; the request's cache key is its
id in the batch (`custom_id`, Gemini's `key`), so results land in the same cache as online results
(online, batch and shard runs mix freely), priced at the provider's batch price from litellm's
bundled price map.

Every step is recorded in `<state_dir>/state.json` (atomic writes) *before* the next one, so a
killed or restarted run re-attaches instead of paying twice:

- a recorded batch id: polled again, its results collected when it ends;
- a batch whose create was attempted but whose id was never recorded (killed between create and
  save, or a create that timed out): the provider is searched for it (`BatchAdapter.find`: by its
  input file for OpenAI and Gemini, by creation time and request count for Anthropic, whose
  batches carry neither) and it is re-attached before a new one is created;
- a request that has a result in the cache is never submitted again; a request inside an
  unfinished batch is not submitted again while that batch runs;
- an expired, cancelled or failed batch, or the error lines of a completed one: only the requests
  without a result are resubmitted, in a new batch, up to `max_rounds` times; what still has no
  result is a failure in the manifest (and a rerun submits exactly those);
- a batch the provider refused to create (after retries) is a failure of its requests in this run;
  a rerun first looks for it at the provider, then creates it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from caml_train.generate.batch_adapter import BatchAdapter, ItemResult, Remote
from caml_train.generate.cache import CacheEntry, ResponseCache
from caml_train.generate.client import GenerationError
from caml_train.generate.forecast import lookup_price
from caml_train.generate.rows import write_json
from caml_train.generate.runner import Failure, Job, RunResult

PROVIDERS = ("openai", "anthropic", "gemini")


class BatchRecord(BaseModel):
    local_id: str
    input_path: str = Field(description="the local copy of the submitted JSONL (its request ids)")
    requests: int
    round: int
    provider: str = "openai"
    file_id: str | None = None
    batch_id: str | None = None
    create_started_at: float | None = Field(
        None, description="epoch seconds of the first create attempt (the re-attach search)"
    )
    status: str = "preparing"
    error: str | None = Field(None, description="why the last upload/create attempt failed")
    collected: bool = False
    results: int = 0
    errors: int = 0
    missing: int = 0
    foreign: int = Field(0, description="results whose ids are not this batch's (ignored)")
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())


class BatchState(BaseModel):
    model: str
    api_base: str | None = None
    batches: list[BatchRecord] = Field(default_factory=list)


def provider_of(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else ""


def supports_batch(model: str) -> bool:
    return provider_of(model) in PROVIDERS


def unsupported_message(model: str) -> str:
    return (
        "--mode batch supports openai/<model> (the OpenAI Batch API, or a server speaking it at"
        " --api-base), anthropic/<model> (Message Batches) and gemini/<model> (the Gemini API's"
        f" batch mode), not {model!r}"
    )


def adapter_class(model: str) -> type[BatchAdapter]:
    provider = provider_of(model)
    if provider == "openai":
        from caml_train.generate.batch_openai import OpenAIBatchAdapter

        return OpenAIBatchAdapter
    if provider == "anthropic":
        from caml_train.generate.batch_anthropic import AnthropicBatchAdapter

        return AnthropicBatchAdapter
    if provider == "gemini":
        from caml_train.generate.batch_gemini import GeminiBatchAdapter

        return GeminiBatchAdapter
    raise ValueError(unsupported_message(model))


def make_adapter(model: str, **kw: Any) -> BatchAdapter:
    """The adapter of `model`'s provider (`kw`: api_base, api_key, client, retry, sleep)."""
    return adapter_class(model)(model, **kw)


def check_batch_options(model: str, api_key: str | None) -> None:
    """Refuse, before anything is planned or paid for, a provider without a batch adapter or a
    run with no API key for it (`ConfigError`, one line)."""
    from caml_evals.errors import ConfigError

    if not supports_batch(model):
        raise ConfigError(f"{unsupported_message(model)}; run it online or with --engine vllm")
    cls = adapter_class(model)
    if cls.key_env:
        cls.require_key(model, api_key)


class BatchRunner:
    """Fetch jobs through a batch API, with the cache first (module docstring)."""

    def __init__(
        self,
        *,
        model: str,
        state_dir: Path,
        api_base: str | None = None,
        api_key: str | None = None,
        adapter: BatchAdapter | None = None,
        client: Any = None,
        chunk_size: int | None = None,
        poll_interval: float = 30.0,
        max_rounds: int = 3,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.adapter = adapter or make_adapter(
            model, api_base=api_base, api_key=api_key, client=client
        )
        self.state_dir = Path(state_dir)
        limit = self.adapter.max_requests
        self.chunk_size = max(1, min(chunk_size or limit, limit))
        self.poll_interval = poll_interval
        self.max_rounds = max_rounds
        self.timeout = timeout
        self._sleep = sleep
        self._progress = progress or (lambda message: None)
        self._key_cache: dict[str, frozenset[str]] = {}
        self.state = self._load()
        self.submitted_now = 0
        self.reattached = 0
        self._poll_error: str | None = None

    @property
    def client(self) -> Any:
        """The adapter's SDK or HTTP client (tests reach through it to simulate a crash)."""
        return getattr(self.adapter, "client", None)

    # ------------------------------------------------------------------------------------ state

    @property
    def state_path(self) -> Path:
        return self.state_dir / "state.json"

    def _load(self) -> BatchState:
        if self.state_path.is_file():
            return BatchState.model_validate_json(self.state_path.read_text(encoding="utf-8"))
        return BatchState(model=self.model, api_base=self.api_base)

    def _save(self) -> None:
        write_json(self.state_path, self.state.model_dump(mode="json"))

    def _keys(self, record: BatchRecord) -> frozenset[str]:
        """The request ids of a batch, read once from its local input file."""
        keys = self._key_cache.get(record.local_id)
        if keys is None:
            field = self.adapter.key_field
            with (self.state_dir / record.input_path).open(encoding="utf-8") as fh:
                keys = frozenset(json.loads(line)[field] for line in fh if line.strip())
            self._key_cache[record.local_id] = keys
        return keys

    # ------------------------------------------------------------------------------ submitting

    def _chunks(self, jobs: list[Job], params: dict[str, Any]) -> Iterator[list[str]]:
        """Input lines of the requests, one batch's worth at a time (within the provider's request
        and byte limits), so a million requests are never all in memory as text."""
        chunk: list[str] = []
        size = 0
        for job in jobs:
            line = self.adapter.line(job.key, job.messages, params)
            n = len(line.encode("utf-8")) + 1
            if chunk and (len(chunk) >= self.chunk_size or size + n > self.adapter.max_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append(line)
            size += n
        if chunk:
            yield chunk

    def _submit(self, jobs: list[Job], params: dict[str, Any], round_: int) -> None:
        for lines in self._chunks(jobs, params):
            local_id = f"b{len(self.state.batches):05d}"
            rel = f"{local_id}.input.jsonl"
            (self.state_dir / rel).write_text("\n".join(lines) + "\n", encoding="utf-8")
            record = BatchRecord(
                local_id=local_id,
                input_path=rel,
                requests=len(lines),
                round=round_,
                provider=self.adapter.provider,
            )
            self.state.batches.append(record)
            self._save()
            if self._ensure_submitted(record):
                self.submitted_now += record.requests

    def _ensure_submitted(self, record: BatchRecord) -> bool:
        """Create `record`'s batch (upload first where the provider takes a file). True when
        created; a refusal (after retries) is recorded on the record, not raised."""
        try:
            data = (self.state_dir / record.input_path).read_bytes()
            if self.adapter.uploads and record.file_id is None:
                record.file_id = self.adapter.upload(f"{record.local_id}.jsonl", data)
                record.status = "uploaded"
                self._save()
            record.create_started_at = record.create_started_at or time.time()
            self._save()
            self._attach(record, self.adapter.create(record, data))
            return True
        except GenerationError as ex:
            record.status, record.error = "submit_failed", str(ex)
            self._save()
            self._progress(f"batch {record.local_id}: not submitted ({ex})")
            return False

    def _reattach(self, record: BatchRecord) -> None:
        """A record a previous process left without a batch id: the batch it may have created is
        searched for and re-attached; if the provider has none, the record is closed unsubmitted
        and its requests without a result go into a new batch (never the stale input file, whose
        requests may have results by now)."""
        if record.create_started_at is not None or record.file_id is not None:
            claimed = {r.batch_id for r in self.state.batches if r.batch_id}
            found = self.adapter.find(record, claimed)
            if found is not None:
                self._attach(record, found)
                self.reattached += 1
                self._progress(f"batch {found.id}: re-attached ({record.local_id})")
                return
        record.status, record.collected = "not_submitted", True
        record.missing = record.requests
        self._save()

    def _attach(self, record: BatchRecord, remote: Remote) -> None:
        record.batch_id, record.status, record.error = remote.id, remote.status, None
        self._save()

    # ------------------------------------------------------------------------------- collecting

    def _entry(self, item: ItemResult, job: Job | None, params: dict[str, Any], round_: int):
        price = lookup_price(self.model, "batch")
        usage = item.usage
        return CacheEntry(
            key=item.key,
            model=self.model,
            messages=job.messages if job else [],
            params=params,
            text=item.text or "",
            finish_reason=item.finish_reason,
            usage=usage,
            cost_usd=(
                usage.prompt_tokens * price.input_per_token
                + usage.completion_tokens * price.output_per_token
                if price
                else 0.0
            ),
            cost_known=price is not None,
            attempts=round_,
            response_model=item.response_model,
            mode="batch",
        )

    def _collect(
        self,
        record: BatchRecord,
        remote: Remote,
        by_key: dict[str, Job],
        params: dict[str, Any],
        cache: ResponseCache,
        result: RunResult,
        errors: dict[str, str],
    ) -> None:
        keys = self._keys(record)
        got: set[str] = set()
        failed: set[str] = set()
        foreign = 0
        for item in self.adapter.results(remote):
            if item.key not in keys:
                foreign += 1
                continue
            if item.text is None:
                if item.key not in got:
                    failed.add(item.key)
                    errors[item.key] = f"batch {record.batch_id}: {item.error or 'error'}"
                continue
            got.add(item.key)
            failed.discard(item.key)
            if item.key in result.entries:  # already had a result: never counted twice
                continue
            entry = self._entry(item, by_key.get(item.key), params, record.round)
            cache.put(entry)
            result.entries[item.key] = entry
            result.usage_this_run.add(entry)
        record.results, record.errors, record.foreign = len(got), len(failed), foreign
        record.missing = len(keys) - record.results - record.errors
        for key in keys - got - failed:
            errors.setdefault(key, f"batch {record.batch_id} {remote.status}: no result")
        record.status = remote.status
        record.collected = True
        self._save()

    def report(self) -> dict[str, Any]:
        """For the manifest: the state file, every batch's id and outcome, this run's counts."""
        return {
            "provider": self.adapter.provider,
            "state": str(self.state_path),
            "submitted_now": self.submitted_now,
            "reattached": self.reattached,
            "batches": [
                r.model_dump(
                    include={
                        "local_id",
                        "batch_id",
                        "status",
                        "round",
                        "requests",
                        "results",
                        "errors",
                        "missing",
                        "collected",
                        "error",
                    }
                )
                for r in self.state.batches
            ],
        }

    # ------------------------------------------------------------------------------------ the run

    def run(
        self, jobs: list[Job], *, cache: ResponseCache, request_params: dict[str, Any]
    ) -> RunResult:
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        result = RunResult()
        by_key: dict[str, Job] = {}
        for job in jobs:
            by_key.setdefault(job.key, job)
        result.unique_requests = len(by_key)
        for key in by_key:
            entry = cache.get(key)
            if entry is not None:
                result.entries[key] = entry
                result.cached_keys.add(key)
                result.usage_from_cache.add(entry)
        errors: dict[str, str] = {}
        round_ = max((r.round for r in self.state.batches), default=0)
        for record in self.state.batches:  # re-attach to what a previous process left running
            if not record.collected and not record.batch_id:
                try:
                    self._reattach(record)
                except GenerationError as ex:  # cannot tell whether it exists: keep it open
                    record.error = str(ex)
                    self._save()
        rounds = 0
        deadline = None if self.timeout is None else started + self.timeout
        self._poll_error = None
        while True:
            open_ = [r for r in self.state.batches if not r.collected]
            in_flight = {k for r in open_ for k in self._keys(r)}
            todo = [j for k, j in by_key.items() if k not in result.entries and k not in in_flight]
            if todo and rounds < self.max_rounds:
                rounds += 1
                round_ += 1
                self._progress(f"batch round {round_}: submitting {len(todo)} request(s)")
                self._submit(todo, request_params, round_)
            pending = [r for r in self.state.batches if not r.collected and r.batch_id]
            if not pending:
                break  # nothing running, and nothing left to submit (or no rounds left)
            self._wait(pending, by_key, request_params, cache, result, errors, deadline)
            running = any(not r.collected and r.batch_id for r in self.state.batches)
            if self._poll_error or (
                deadline is not None and running and time.monotonic() > deadline
            ):
                break  # still running (or the provider unreachable): the next run re-attaches
        unsent = {r.local_id: r for r in self.state.batches if not r.collected and not r.batch_id}
        running_keys = {k for r in self.state.batches if not r.collected for k in self._keys(r)}
        for record in unsent.values():
            for key in self._keys(record):
                errors[key] = f"batch {record.local_id} not submitted: {record.error} (rerun)"
        for key, job in by_key.items():
            if key not in result.entries:
                still = key in running_keys and key not in errors
                note = f"; {self._poll_error}" if self._poll_error else ""
                error = (
                    f"still running in a batch (rerun to collect){note}"
                    if still
                    else errors.get(key, "no result")
                )
                result.failures.append(
                    Failure(id=job.id, prompt_hash=key, error=error, attempts=round_)
                )
        result.seconds = time.monotonic() - started
        return result

    def _wait(self, pending, by_key, params, cache, result, errors, deadline) -> None:
        while pending:
            still = []
            for record in pending:
                try:
                    remote = self.adapter.retrieve(record.batch_id)
                    if remote.ended:
                        self._collect(record, remote, by_key, params, cache, result, errors)
                except GenerationError as ex:  # retries exhausted: stop; a rerun re-attaches
                    self._poll_error = str(ex)
                    self._progress(f"batch {record.batch_id}: {ex}; stopped waiting")
                    return
                if remote.ended:
                    self._progress(
                        f"batch {record.batch_id} {remote.status}: {record.results} results,"
                        f" {record.errors} errors, {record.missing} missing"
                    )
                else:
                    if remote.status != record.status:
                        record.status = remote.status
                        self._save()
                    still.append(record)
            pending = still
            if pending:
                if deadline is not None and time.monotonic() > deadline:
                    return
                self._sleep(self.poll_interval)
