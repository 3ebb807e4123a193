"""`--mode batch`: the uncached requests go to the provider's batch API (about half the price).

OpenAI's Batch API (or any server speaking it at `--api-base`) through the OpenAI SDK: each chunk of
requests (at most `MAX_REQUESTS` and `MAX_BYTES` per batch, OpenAI's limits) is written to a local
JSONL file, uploaded, and submitted as one batch; `custom_id` is the request's cache key, so
results land in the same cache as online results (online, batch and shard runs mix freely).

Every step is recorded in `<state_dir>/state.json` (atomic writes) *before* the next one, so a
killed or restarted run re-attaches instead of paying twice:

- a recorded batch id: polled again, its results collected when it ends;
- an uploaded file with no recorded batch (killed between create and save): the provider's batch
  list is searched for a batch of that input file (re-attached) before one is created;
- a request that has a result in the cache is never submitted again; a request inside an
  unfinished batch is not submitted again while that batch runs;
- an expired, cancelled or failed batch, or error lines of a completed one: only the requests
  without a result are resubmitted, in a new batch, up to `max_rounds` times; what still has no
  result is a failure in the manifest (and a rerun submits exactly those).

Anthropic Message Batches and Gemini/Vertex batch prediction are not implemented yet: `--mode
batch` with another provider is a one-line error.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from caml_train.generate.cache import CacheEntry, ResponseCache, Usage
from caml_train.generate.forecast import lookup_price
from caml_train.generate.rows import write_json
from caml_train.generate.runner import Failure, Job, RunResult

MAX_REQUESTS = 50_000
MAX_BYTES = 190 * 2**20  # OpenAI allows 200 MB per input file; keep a margin
ENDPOINT = "/v1/chat/completions"
RUNNING = {"validating", "in_progress", "finalizing", "cancelling"}
ENDED = {"completed", "expired", "cancelled", "failed"}


class BatchRecord(BaseModel):
    local_id: str
    input_path: str = Field(description="the local copy of the uploaded JSONL (its custom_ids)")
    requests: int
    round: int
    file_id: str | None = None
    batch_id: str | None = None
    status: str = "preparing"
    collected: bool = False
    results: int = 0
    errors: int = 0
    missing: int = 0
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())


class BatchState(BaseModel):
    model: str
    api_base: str | None = None
    batches: list[BatchRecord] = Field(default_factory=list)


def supports_batch(model: str) -> bool:
    return model.startswith("openai/")


class BatchRunner:
    """Fetch jobs through the batch API, with the cache first (module docstring)."""

    def __init__(
        self,
        *,
        model: str,
        state_dir: Path,
        api_base: str | None = None,
        api_key: str | None = None,
        client: Any = None,
        chunk_size: int = MAX_REQUESTS,
        poll_interval: float = 30.0,
        max_rounds: int = 3,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if not supports_batch(model):
            raise ValueError(
                f"--mode batch supports openai/<model> (the OpenAI Batch API, or a server speaking it"
                f" at --api-base) so far, not {model!r}"
            )
        self.model = model
        self.api_base = api_base
        self.state_dir = Path(state_dir)
        self.chunk_size = max(1, min(chunk_size, MAX_REQUESTS))
        self.poll_interval = poll_interval
        self.max_rounds = max_rounds
        self.timeout = timeout
        self._sleep = sleep
        self._progress = progress or (lambda message: None)
        if client is None:
            import openai

            client = openai.OpenAI(api_key=api_key or "EMPTY", base_url=api_base, max_retries=3)
        self.client = client
        self._key_cache: dict[str, frozenset[str]] = {}
        self.state = self._load()
        self.submitted_now = 0
        self.reattached = 0

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
        """The custom_ids of a batch, read once from its local input file."""
        keys = self._key_cache.get(record.local_id)
        if keys is None:
            with (self.state_dir / record.input_path).open(encoding="utf-8") as fh:
                keys = frozenset(json.loads(line)["custom_id"] for line in fh if line.strip())
            self._key_cache[record.local_id] = keys
        return keys

    # ------------------------------------------------------------------------------ submitting

    def _chunks(self, jobs: list[Job], params: dict[str, Any]) -> Iterator[list[str]]:
        """JSONL lines of the requests, one batch's worth at a time (within the request and byte
        limits), so a million requests are never all in memory as text."""
        chunk: list[str] = []
        size = 0
        for job in jobs:
            body = {"model": self.model.removeprefix("openai/"), "messages": job.messages, **params}
            line = json.dumps(
                {"custom_id": job.key, "method": "POST", "url": ENDPOINT, "body": body},
                ensure_ascii=False,
            )
            if chunk and (len(chunk) >= self.chunk_size or size + len(line) > MAX_BYTES):
                yield chunk
                chunk, size = [], 0
            chunk.append(line)
            size += len(line) + 1
        if chunk:
            yield chunk

    def _submit(self, jobs: list[Job], params: dict[str, Any], round_: int) -> None:
        for lines in self._chunks(jobs, params):
            local_id = f"b{len(self.state.batches):05d}"
            rel = f"{local_id}.input.jsonl"
            (self.state_dir / rel).write_text("\n".join(lines) + "\n", encoding="utf-8")
            record = BatchRecord(
                local_id=local_id, input_path=rel, requests=len(lines), round=round_
            )
            self.state.batches.append(record)
            self._save()
            self._ensure_submitted(record)
            self.submitted_now += record.requests

    def _ensure_submitted(self, record: BatchRecord) -> None:
        if record.batch_id:
            return
        if record.file_id is None:
            data = (self.state_dir / record.input_path).read_bytes()
            uploaded = self.client.files.create(
                file=(f"{record.local_id}.jsonl", io.BytesIO(data)), purpose="batch"
            )
            record.file_id = uploaded.id
            record.status = "uploaded"
            self._save()
        else:  # uploaded before a crash: the batch may exist already
            found = self._find_batch(record.file_id)
            if found is not None:
                record.batch_id, record.status = found.id, found.status
                self.reattached += 1
                self._save()
                return
        batch = self.client.batches.create(
            input_file_id=record.file_id,
            endpoint=ENDPOINT,
            completion_window="24h",
            metadata={"caml_train": record.local_id},
        )
        record.batch_id, record.status = batch.id, batch.status
        self._save()

    def _find_batch(self, file_id: str) -> Any:
        for batch in self.client.batches.list(limit=100):  # the SDK pages through the rest
            if batch.input_file_id == file_id:
                return batch
        return None

    # ------------------------------------------------------------------------------- collecting

    def _price(self) -> tuple[float, float] | None:
        price = lookup_price(self.model, "batch")
        return (price.input_per_token, price.output_per_token) if price else None

    def _collect(
        self,
        record: BatchRecord,
        batch: Any,
        by_key: dict[str, Job],
        params: dict[str, Any],
        cache: ResponseCache,
        result: RunResult,
        errors: dict[str, str],
    ) -> None:
        keys = self._keys(record)
        got: set[str] = set()
        price = self._price()
        if batch.output_file_id:
            text = self.client.files.content(batch.output_file_id).text
            for line in text.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                key = item.get("custom_id")
                response = item.get("response") or {}
                body = response.get("body") or {}
                if key not in keys or response.get("status_code") != 200 or not body.get("choices"):
                    if key in keys:
                        errors[key] = (
                            f"batch {record.batch_id}: status {response.get('status_code')}"
                        )
                    continue
                got.add(key)
                if key in result.entries:  # already had a result: never counted twice
                    continue
                choice = body["choices"][0]
                u = body.get("usage") or {}
                usage = Usage(
                    prompt_tokens=int(u.get("prompt_tokens") or 0),
                    completion_tokens=int(u.get("completion_tokens") or 0),
                )
                cost = (
                    usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]
                    if price
                    else 0.0
                )
                job = by_key.get(key)
                entry = CacheEntry(
                    key=key,
                    model=self.model,
                    messages=job.messages if job else [],
                    params=params,
                    text=(choice.get("message") or {}).get("content") or "",
                    finish_reason=choice.get("finish_reason"),
                    usage=usage,
                    cost_usd=cost,
                    cost_known=price is not None,
                    attempts=record.round,
                    response_model=body.get("model"),
                    mode="batch",
                )
                cache.put(entry)
                result.entries[key] = entry
                result.usage_this_run.add(entry)
        if batch.error_file_id:
            for line in self.client.files.content(batch.error_file_id).text.splitlines():
                if line.strip():
                    item = json.loads(line)
                    key = item.get("custom_id")
                    body = ((item.get("response") or {}).get("body") or {}).get("error") or {}
                    if key in keys and key not in got:
                        errors[key] = f"batch {record.batch_id}: {body.get('message', 'error')}"
        record.results = len(got)
        record.errors = sum(1 for k in keys if k in errors and k not in got)
        record.missing = len(keys) - record.results - record.errors
        for key in keys - got:
            errors.setdefault(key, f"batch {record.batch_id} {batch.status}: no result")
        record.status = batch.status
        record.collected = True
        self._save()

    def report(self) -> dict[str, Any]:
        """For the manifest: the state file, every batch's id and outcome, this run's counts."""
        return {
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
            if not record.collected:
                self._ensure_submitted(record)
        rounds = 0
        deadline = None if self.timeout is None else started + self.timeout
        while True:
            in_flight = {k for r in self.state.batches if not r.collected for k in self._keys(r)}
            todo = [j for k, j in by_key.items() if k not in result.entries and k not in in_flight]
            if todo and rounds < self.max_rounds:
                rounds += 1
                round_ += 1
                self._progress(f"batch round {round_}: submitting {len(todo)} request(s)")
                self._submit(todo, request_params, round_)
            pending = [r for r in self.state.batches if not r.collected]
            if not pending:
                break  # nothing running, and nothing left to submit (or no rounds left)
            self._wait(pending, by_key, request_params, cache, result, errors, deadline)
            running = any(not r.collected for r in self.state.batches)
            if deadline is not None and running and time.monotonic() > deadline:
                break  # still running: the next run re-attaches
        running = {k for r in self.state.batches if not r.collected for k in self._keys(r)}
        for key, job in by_key.items():
            if key not in result.entries:
                still = key in running
                error = (
                    "still running in a batch (rerun to collect)"
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
                batch = self.client.batches.retrieve(record.batch_id)
                if batch.status in ENDED:
                    self._collect(record, batch, by_key, params, cache, result, errors)
                    self._progress(
                        f"batch {record.batch_id} {batch.status}: {record.results} results,"
                        f" {record.errors} errors, {record.missing} missing"
                    )
                else:
                    if batch.status != record.status:
                        record.status = batch.status
                        self._save()
                    still.append(record)
            pending = still
            if pending:
                if deadline is not None and time.monotonic() > deadline:
                    return
                self._sleep(self.poll_interval)
