"""The OpenAI Batch API (or any server speaking it at `--api-base`) for the batch runner, through
the OpenAI SDK: a JSONL file of `{custom_id, method, url, body}` lines is uploaded
(`purpose="batch"`) and submitted as one batch (`/v1/chat/completions`, 24 h window). Limits:
50,000 requests and 200 MB per input file (a margin is kept). A batch a killed process created is
found again by its input file id."""

from __future__ import annotations

import io
import itertools
import json
import os
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from caml_train.generate.batch_adapter import BatchAdapter, ItemResult, Remote, openai_shaped
from caml_train.generate.cache import Usage

if TYPE_CHECKING:
    from caml_train.generate.batch import BatchRecord

ENDPOINT = "/v1/chat/completions"


class OpenAIBatchAdapter(BatchAdapter):
    provider = "openai"
    max_requests = 50_000
    max_bytes = 190 * 2**20  # OpenAI allows 200 MB per input file; keep a margin

    def __init__(self, model: str, *, client: Any = None, **kw: Any) -> None:
        super().__init__(model, **kw)
        if client is None:
            import openai

            key = self.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
            client = openai.OpenAI(api_key=key, base_url=self.api_base, max_retries=0)
        self.client = client

    def line(self, key: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        body = {"model": self.model_name, "messages": messages, **params}
        return json.dumps(
            {"custom_id": key, "method": "POST", "url": ENDPOINT, "body": body},
            ensure_ascii=False,
        )

    def upload(self, name: str, data: bytes) -> str:
        uploaded = self.call(
            "upload",
            lambda: self.client.files.create(file=(name, io.BytesIO(data)), purpose="batch"),
        )
        return uploaded.id

    def create(self, record: BatchRecord, data: bytes) -> Remote:
        batch = self.call(
            "create",
            lambda: self.client.batches.create(
                input_file_id=record.file_id,
                endpoint=ENDPOINT,
                completion_window="24h",
                metadata={"caml_train": record.local_id},
            ),
        )
        return openai_shaped(batch)

    def find(self, record: BatchRecord, claimed: set[str]) -> Remote | None:
        def search() -> Any:
            for batch in self.client.batches.list(limit=100):  # the SDK pages through the rest
                if batch.input_file_id == record.file_id and batch.id not in claimed:
                    return batch
            return None

        found = self.call("list", search) if record.file_id else None
        return None if found is None else openai_shaped(found)

    def retrieve(self, batch_id: str) -> Remote:
        return openai_shaped(self.call("retrieve", lambda: self.client.batches.retrieve(batch_id)))

    def cancel(self, batch_id: str) -> Remote:
        return openai_shaped(self.call("cancel", lambda: self.client.batches.cancel(batch_id)))

    def _lines(self, file_id: str | None) -> Iterator[dict[str, Any]]:
        if not file_id:
            return iter(())

        def write(fh: IO[bytes]) -> None:
            with self.client.files.with_streaming_response.content(file_id) as response:
                for chunk in response.iter_bytes():
                    fh.write(chunk)

        return self.download_lines("download", write)

    def results(self, remote: Remote) -> Iterator[ItemResult]:
        batch = remote.raw
        for item in itertools.chain(
            self._lines(batch.output_file_id), self._lines(batch.error_file_id)
        ):
            key = item.get("custom_id")
            response = item.get("response") or {}
            body = response.get("body") or {}
            if response.get("status_code") != 200 or not body.get("choices"):
                error = (body.get("error") or {}).get("message") or (item.get("error") or {}).get(
                    "message"
                )
                yield ItemResult(key=key, error=error or f"status {response.get('status_code')}")
                continue
            choice = body["choices"][0]
            u = body.get("usage") or {}
            yield ItemResult(
                key=key,
                text=(choice.get("message") or {}).get("content") or "",
                finish_reason=choice.get("finish_reason"),
                usage=Usage(
                    prompt_tokens=int(u.get("prompt_tokens") or 0),
                    completion_tokens=int(u.get("completion_tokens") or 0),
                ),
                response_model=body.get("model"),
            )
