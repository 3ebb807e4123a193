"""Gemini Developer API batch mode (`gemini/<model>`) for the batch runner, through litellm.

litellm's Gemini files and batches code covers what a run needs: the input JSONL is uploaded to the
Files API (`litellm.create_file`, resumable upload), submitted with
`models/{model}:batchGenerateContent` (`litellm.create_batch`), polled (`litellm.retrieve_batch`,
Gemini's `BATCH_STATE_*` read as OpenAI's statuses) and its responses file read
(`litellm.file_content`). Each input line is Gemini's documented file-batch row, `{"key",
"request": GenerateContentRequest}` (system messages as `systemInstruction`, assistant turns as
role `model`, `temperature`/`max_tokens`/`top_p` as `generationConfig`); each output line is
`{"key", "response": GenerateContentResponse}` or `{"key", "error"|"status": ...}`. Usage counts
thinking tokens (`thoughtsTokenCount`) as completion tokens, as Gemini bills them.

litellm does not list or cancel Gemini batches, so those two calls (`GET /v1beta/batches`, `POST
/v1beta/batches/{id}:cancel`) go over HTTP (httpx): a batch a killed process created but never
recorded is found by its input file (`inputConfig.fileName`). An expired batch has no responses
file: all of its requests are resubmitted.

Limits: 2 GB per input file (the Files API's limit; a margin is kept); Gemini documents no request
count per batch, 50,000 keeps each responses file manageable. `--api-base` is the API root
(default `https://generativelanguage.googleapis.com`); the key comes from `--api-key`,
`GOOGLE_API_KEY` or `GEMINI_API_KEY`.

Vertex AI batch prediction (`vertex_ai/<model>`) needs Google Cloud credentials (google-auth) and
a Cloud Storage bucket, neither of which this project installs; it is not supported yet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from caml_train.generate.batch_adapter import (
    FINISH_REASONS,
    BatchAdapter,
    ItemResult,
    Remote,
    openai_shaped,
)
from caml_train.generate.cache import Usage

if TYPE_CHECKING:
    from caml_train.generate.batch import BatchRecord

DEFAULT_BASE = "https://generativelanguage.googleapis.com"
GENERATION_CONFIG = {"temperature": "temperature", "max_tokens": "maxOutputTokens", "top_p": "topP"}


def _parts(text: str) -> list[dict[str, str]]:
    return [{"text": text}]


def file_name(file_id: str) -> str:
    """Gemini's `files/<id>` name of a file id litellm returns (the file's URI, or a bare id)."""
    tail = file_id.rstrip("/").rsplit("/files/", 1)[-1]
    return f"files/{tail.removeprefix('files/')}"


class GeminiBatchAdapter(BatchAdapter):
    provider = "gemini"
    max_requests = 50_000
    max_bytes = 1900 * 2**20  # the Files API takes up to 2 GB per file
    key_field = "key"
    key_env = ("GOOGLE_API_KEY", "GEMINI_API_KEY")  # litellm's order

    def __init__(self, model: str, *, client: Any = None, **kw: Any) -> None:
        super().__init__(model, **kw)
        from caml_train.generate.client import import_litellm

        key = self.require_key(model, self.api_key)
        base = self.api_base or os.environ.get("GEMINI_API_BASE") or DEFAULT_BASE
        self.base = base.rstrip("/").removesuffix("/v1beta")
        self.key = key
        self.litellm = import_litellm()
        if client is None:
            import httpx

            client = httpx.Client(timeout=self.retry.timeout)
        self.client = client

    @property
    def _kw(self) -> dict[str, Any]:
        return {"custom_llm_provider": "gemini", "api_base": self.base, "api_key": self.key}

    def line(self, key: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        system = "\n\n".join(str(m["content"]) for m in messages if m["role"] == "system")
        request: dict[str, Any] = {
            "contents": [
                {
                    "role": "model" if m["role"] == "assistant" else "user",
                    "parts": _parts(str(m["content"])),
                }
                for m in messages
                if m["role"] != "system"
            ],
            "generationConfig": {
                GENERATION_CONFIG[k]: v for k, v in params.items() if k in GENERATION_CONFIG
            },
        }
        if system:
            request["systemInstruction"] = {"parts": _parts(system)}
        return json.dumps({"key": key, "request": request}, ensure_ascii=False)

    def upload(self, name: str, data: bytes) -> str:
        uploaded = self.call(
            "upload",
            lambda: self.litellm.create_file(
                file=(name, data, "application/jsonl"), purpose="batch", **self._kw
            ),
        )
        return uploaded.id

    def create(self, record: BatchRecord, data: bytes) -> Remote:
        batch = self.call(
            "create",
            lambda: self.litellm.create_batch(
                completion_window="24h",
                endpoint="/v1/chat/completions",
                input_file_id=record.file_id,
                model=self.model,
                metadata={"display_name": f"caml-train {record.local_id}"},
                **self._kw,
            ),
        )
        return openai_shaped(batch)

    def retrieve(self, batch_id: str) -> Remote:
        batch = self.call(
            "retrieve",
            lambda: self.litellm.retrieve_batch(batch_id=batch_id, model=self.model, **self._kw),
        )
        return openai_shaped(batch)

    def _http(self, what: str, method: str, path: str, **kw: Any) -> Any:
        def send() -> Any:
            response = self.client.request(
                method, f"{self.base}/{path}", headers={"x-goog-api-key": self.key}, **kw
            )
            response.raise_for_status()
            return response.json()

        return self.call(what, send)

    def find(self, record: BatchRecord, claimed: set[str]) -> Remote | None:
        if not record.file_id:
            return None
        wanted, token = file_name(record.file_id), None
        while True:
            params = {"pageSize": 100, **({"pageToken": token} if token else {})}
            page = self._http("list", "GET", "v1beta/batches", params=params)
            for op in page.get("operations") or page.get("batches") or []:
                meta = op.get("metadata") or op
                config = meta.get("inputConfig") or {}
                bid = str(op.get("name", "")).removeprefix("batches/")
                if config.get("fileName") == wanted and bid not in claimed:
                    return self.retrieve(bid)
            token = page.get("nextPageToken")
            if not token:
                return None

    def cancel(self, batch_id: str) -> Remote:
        self._http("cancel", "POST", f"v1beta/batches/{batch_id}:cancel")
        return self.retrieve(batch_id)

    def results(self, remote: Remote) -> Iterator[ItemResult]:
        output = remote.raw.output_file_id
        if not output:
            return

        def write(fh: IO[bytes]) -> None:
            fh.write(self.litellm.file_content(file_id=output, **self._kw).content)

        for row in self.download_lines("download", write):
            key = row.get("key")
            response = row.get("response")
            problem = row.get("error") or row.get("status")
            candidates = (response or {}).get("candidates") or []
            if problem or not candidates:
                feedback = (response or {}).get("promptFeedback") or {}
                reason = (problem or {}).get("message") or feedback.get("blockReason")
                yield ItemResult(key=key, error=str(reason or "no candidates"))
                continue
            first = candidates[0]
            parts = (first.get("content") or {}).get("parts") or []
            u = response.get("usageMetadata") or {}
            finish = first.get("finishReason")
            yield ItemResult(
                key=key,
                text="".join(p.get("text", "") for p in parts if not p.get("thought")),
                finish_reason=FINISH_REASONS.get(finish, finish.lower() if finish else None),
                usage=Usage(
                    prompt_tokens=int(u.get("promptTokenCount") or 0),
                    completion_tokens=int(u.get("candidatesTokenCount") or 0)
                    + int(u.get("thoughtsTokenCount") or 0),
                ),
                response_model=response.get("modelVersion"),
            )
