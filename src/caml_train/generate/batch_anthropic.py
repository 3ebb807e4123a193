"""Anthropic Message Batches for the batch runner, over Anthropic's documented HTTP endpoints.

Why HTTP and not litellm or the SDK: the installed litellm covers only retrieving a Message Batch
(not creating one, its results or cancelling), and the `anthropic` SDK is not a dependency; httpx
(already installed with the OpenAI SDK) speaks the five endpoints in a few lines, with the runner's
retries (`BatchAdapter.call`).

- create: `POST /v1/messages/batches` with the requests inline (`{custom_id, params}`; at most
  100,000 requests or 256 MB per batch); system messages become `params.system`;
- retrieve: `GET /v1/messages/batches/{id}` (`processing_status` in_progress | canceling | ended);
- results: the batch's `results_url` (JSONL: `succeeded`, `errored`, `canceled`, `expired`), read
  line by line; a canceled or expired request simply has no result (the runner resubmits it);
- find: Message Batches carry no metadata and no input file, so a batch a killed process created
  but never recorded is found by what it has: created at most `FIND_WINDOW_S` after the record's
  create attempt (the first such; one up to `CLOCK_SKEW_S` before it only failing that), with the
  record's request count, and not another record's batch. When collected, results whose ids are
  not the record's are ignored (counted as `foreign`), so a wrong match costs a resubmission of
  those requests, never a wrong document.
- cancel: `POST /v1/messages/batches/{id}/cancel`.

`--api-base` is the API's root (`https://api.anthropic.com`, the default; a trailing `/v1` is
accepted); the key comes from `--api-key` or `ANTHROPIC_API_KEY`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from caml_train.generate.batch_adapter import FINISH_REASONS, BatchAdapter, ItemResult, Remote
from caml_train.generate.cache import Usage

if TYPE_CHECKING:
    from caml_train.generate.batch import BatchRecord

DEFAULT_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
FIND_WINDOW_S = 600.0
CLOCK_SKEW_S = 5.0  # between this machine and the provider


def _epoch(stamp: str | None) -> float | None:
    return None if not stamp else datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict))


class AnthropicBatchAdapter(BatchAdapter):
    provider = "anthropic"
    max_requests = 100_000
    max_bytes = 250 * 10**6  # 256 MB per batch request body; keep a margin
    uploads = False
    key_env = ("ANTHROPIC_API_KEY",)

    def __init__(self, model: str, *, client: Any = None, **kw: Any) -> None:
        super().__init__(model, **kw)
        key = self.require_key(model, self.api_key)
        base = (self.api_base or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE).rstrip("/")
        self.base = base.removesuffix("/v1")
        if client is None:
            import httpx

            client = httpx.Client(timeout=self.retry.timeout)
        self.client = client
        self.headers = {
            "x-api-key": key,
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
        }

    def _request(self, what: str, method: str, url: str, **kw: Any) -> Any:
        def send() -> Any:
            response = self.client.request(method, url, headers=self.headers, **kw)
            response.raise_for_status()
            return response

        return self.call(what, send)

    def line(self, key: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        system = "\n\n".join(_text(m["content"]) for m in messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": [m for m in messages if m["role"] != "system"],
            **params,
        }
        if system:
            body["system"] = system
        return json.dumps({"custom_id": key, "params": body}, ensure_ascii=False)

    @staticmethod
    def _remote(batch: dict[str, Any]) -> Remote:
        counts = batch.get("request_counts") or {}
        ended = batch["processing_status"] == "ended"
        outcome = None
        if ended:  # ended with no success at all because of expiry/cancel reads as such
            outcome = (
                "cancelled"
                if batch.get("cancel_initiated_at")
                else "expired"
                if counts.get("expired")
                else "completed"
            )
        return Remote(
            id=batch["id"],
            status=batch["processing_status"],
            ended=ended,
            outcome=outcome,
            raw=batch,
            requests=sum(int(v or 0) for v in counts.values()),
            created_at=_epoch(batch.get("created_at")),
        )

    def create(self, record: BatchRecord, data: bytes) -> Remote:
        lines = [x for x in data.split(b"\n") if x.strip()]
        body = b'{"requests":[' + b",".join(lines) + b"]}"
        url = f"{self.base}/v1/messages/batches"
        return self._remote(self._request("create", "POST", url, content=body).json())

    def find(self, record: BatchRecord, claimed: set[str]) -> Remote | None:
        started = record.create_started_at
        if started is None:
            return None
        candidates: list[Remote] = []
        after: str | None = None
        while True:  # newest first: stop at the first batch older than the create attempt
            params: dict[str, Any] = {"limit": 100, **({"after_id": after} if after else {})}
            url = f"{self.base}/v1/messages/batches"
            page = self._request("list", "GET", url, params=params).json()
            older = False
            for batch in page.get("data") or []:
                remote = self._remote(batch)
                created = remote.created_at or 0.0
                if created < started - CLOCK_SKEW_S:
                    older = True
                    break
                if (
                    created <= started + FIND_WINDOW_S
                    and remote.requests == record.requests
                    and remote.id not in claimed
                ):
                    candidates.append(remote)
            if older or not page.get("has_more") or not page.get("last_id"):
                break
            after = page["last_id"]
        # the first batch created after the attempt; one a little before it only for clock skew
        if not candidates:
            return None
        return min(
            candidates,
            key=lambda r: ((r.created_at or 0.0) < started, abs((r.created_at or 0.0) - started)),
        )

    def retrieve(self, batch_id: str) -> Remote:
        url = f"{self.base}/v1/messages/batches/{batch_id}"
        return self._remote(self._request("retrieve", "GET", url).json())

    def cancel(self, batch_id: str) -> Remote:
        url = f"{self.base}/v1/messages/batches/{batch_id}/cancel"
        return self._remote(self._request("cancel", "POST", url).json())

    def results(self, remote: Remote) -> Iterator[ItemResult]:
        url = (
            remote.raw.get("results_url") or f"{self.base}/v1/messages/batches/{remote.id}/results"
        )

        def write(fh: IO[bytes]) -> None:
            with self.client.stream("GET", url, headers=self.headers) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    fh.write(chunk)

        for item in self.download_lines("results", write):
            key, result = item.get("custom_id"), item.get("result") or {}
            kind = result.get("type")
            if kind == "succeeded":
                message = result.get("message") or {}
                u = message.get("usage") or {}
                stop = message.get("stop_reason")
                yield ItemResult(
                    key=key,
                    text=_text(message.get("content")),
                    finish_reason=FINISH_REASONS.get(stop, stop),
                    usage=Usage(
                        prompt_tokens=int(u.get("input_tokens") or 0),
                        completion_tokens=int(u.get("output_tokens") or 0),
                    ),
                    response_model=message.get("model"),
                )
            elif kind == "errored":
                error = (result.get("error") or {}).get("error") or {}
                yield ItemResult(
                    key=key, error=f"{error.get('type', 'error')}: {error.get('message', '')}"
                )
            # canceled / expired: no result; the runner resubmits the request
