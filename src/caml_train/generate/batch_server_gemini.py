"""Gemini Developer API batch endpoints of the local batch server (`batch_server.BatchAPIServer`).

As the Gemini API documents them (and litellm's Gemini files/batches code sends them): the Files
API's resumable upload (`POST /upload/v1beta/files`, `X-Goog-Upload-Command: start`, then
`upload, finalize` at the returned `X-Goog-Upload-URL`), `POST
/v1beta/models/{model}:batchGenerateContent` with the uploaded JSONL as `inputConfig.fileName`
(one `{"key", "request": GenerateContentRequest}` per line), `GET /v1beta/batches/{id}` and `GET
/v1beta/batches` (long-running operations), `POST /v1beta/batches/{id}:cancel`, and `GET
/download/v1beta/files/{id}:download` for the responses file (one `{"key", "response"}` or
`{"key", "error"}` per line). An expired or cancelled batch has no responses file, as documented.
Requests need `x-goog-api-key` (or `?key=`).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from caml_train.generate.batch_server import Job, rfc3339

if TYPE_CHECKING:
    from caml_train.generate.batch_server import BatchAPIServer

STATES = {
    "in_progress": "BATCH_STATE_RUNNING",
    "completed": "BATCH_STATE_SUCCEEDED",
    "expired": "BATCH_STATE_EXPIRED",
    "cancelled": "BATCH_STATE_CANCELLED",
}


def _error(status: int, message: str) -> JSONResponse:
    names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND"}
    return JSONResponse(
        {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}},
        status_code=status,
    )


def _field(obj: dict[str, Any], camel: str, snake: str) -> Any:
    """Google's JSON APIs take both spellings of a field name."""
    return obj.get(camel, obj.get(snake))


def _text(content: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in content.get("parts") or [])


def _body(model: str, request: dict[str, Any]) -> dict[str, Any] | str:
    """A GenerateContentRequest as an OpenAI-shaped body, or what is wrong with it."""
    contents = request.get("contents") or []
    if not contents:
        return "request.contents: at least one content is required"
    if any(c.get("role", "user") not in ("user", "model") for c in contents):
        return "request.contents: roles are 'user' or 'model' (system: systemInstruction)"
    messages = []
    system = _field(request, "systemInstruction", "system_instruction")
    if system:
        messages.append({"role": "system", "content": _text(system)})
    for c in contents:
        role = "assistant" if c.get("role") == "model" else "user"
        messages.append({"role": role, "content": _text(c)})
    return {"model": model, "messages": messages}


def view(job: Job) -> dict[str, Any]:
    ok = sum(1 for o in job.outcomes.values() if o.ok)
    batch: dict[str, Any] = {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
        "name": f"batches/{job.id}",
        "model": f"models/{job.model}",
        "displayName": (job.metadata or {}).get("displayName", ""),
        "inputConfig": {"fileName": job.input_file},
        "createTime": rfc3339(job.created),
        "updateTime": rfc3339(job.ended or job.created),
        "batchStats": {
            "requestCount": str(len(job.items)),
            "successfulRequestCount": str(ok),
            "failedRequestCount": str(len(job.outcomes) - ok),
            "pendingRequestCount": str(len(job.items) if job.running else 0),
        },
        "state": STATES[job.state],
    }
    if job.ended:
        batch["endTime"] = rfc3339(job.ended)
    if "output" in job.files:
        batch["output"] = {"responsesFile": f"files/{job.files['output']}"}
    operation: dict[str, Any] = {"name": f"batches/{job.id}", "metadata": batch}
    operation["done"] = not job.running
    if not job.running:
        operation["response"] = batch
    return operation


def write_output(server: BatchAPIServer, job: Job) -> None:
    """The responses file of a succeeded batch (none for an expired or cancelled one)."""
    if job.state != "completed":
        return
    rows = []
    for cid, _body_ in job.items:
        o = job.outcomes.get(cid)
        if o is None:
            continue
        if not o.ok:
            rows.append(
                {"key": cid, "error": {"code": 13, "message": o.error, "status": "INTERNAL"}}
            )
            continue
        rows.append(
            {
                "key": cid,
                "response": {
                    "candidates": [
                        {
                            "content": {"parts": [{"text": o.content}], "role": "model"},
                            "finishReason": "STOP",
                            "index": 0,
                        }
                    ],
                    "usageMetadata": {
                        "promptTokenCount": o.prompt_tokens,
                        "candidatesTokenCount": o.completion_tokens,
                        "totalTokenCount": o.prompt_tokens + o.completion_tokens,
                    },
                    "modelVersion": job.model,
                },
            }
        )
    if rows:
        job.files["output"] = server.store_file(
            "".join(json.dumps(r) + "\n" for r in rows).encode()
        )


def add_routes(app: FastAPI, server: BatchAPIServer) -> None:
    uploads: dict[str, str] = {}  # upload id -> display name

    def auth(request: Request) -> JSONResponse | None:
        if not (request.headers.get("x-goog-api-key") or request.query_params.get("key")):
            return _error(401, "an API key (x-goog-api-key) is required")
        return None

    def lookup(request: Request, bid: str) -> Job | JSONResponse:
        """The batch, or the error the API answers (no key, no such batch)."""
        if (denied := auth(request)) is not None:
            return denied
        job = server.jobs.get(bid)
        if job is None or job.provider != "gemini":
            return _error(404, f"batches/{bid} not found")
        return job

    @app.post("/upload/v1beta/files")
    async def upload(request: Request, upload_id: str | None = None) -> Response:
        if upload_id is None:  # step 1: start a resumable upload
            if (denied := auth(request)) is not None:
                return denied
            if request.headers.get("x-goog-upload-command") != "start":
                return _error(400, "X-Goog-Upload-Command: start expected")
            meta = (await request.json()).get("file") or {}
            uid = uuid.uuid4().hex
            uploads[uid] = _field(meta, "displayName", "display_name") or uid
            url = f"{server.url}/upload/v1beta/files?upload_id={uid}"
            return JSONResponse(
                {}, headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"}
            )
        if upload_id not in uploads:
            return _error(404, "unknown upload")
        if "finalize" not in request.headers.get("x-goog-upload-command", ""):
            return _error(400, "X-Goog-Upload-Command: upload, finalize expected")
        data = await request.body()
        fid = server.store_file(data)
        created = rfc3339(time.time())
        return JSONResponse(
            {
                "file": {
                    "name": f"files/{fid}",
                    "displayName": uploads.pop(upload_id),
                    "mimeType": "application/jsonl",
                    "sizeBytes": str(len(data)),
                    "createTime": created,
                    "updateTime": created,
                    "uri": f"{server.url}/v1beta/files/{fid}",
                    "state": "ACTIVE",
                    "source": "UPLOADED",
                }
            },
            headers={"X-Goog-Upload-Status": "final"},
        )

    @app.get("/download/v1beta/files/{fid}:download")
    async def download(fid: str, request: Request) -> Response:
        if (denied := auth(request)) is not None:
            return denied
        data = server.files.get(fid)
        if data is None:
            return _error(404, f"files/{fid} not found")
        return Response(data, media_type="application/octet-stream")

    @app.post("/v1beta/models/{model}:batchGenerateContent")
    async def create(model: str, request: Request) -> JSONResponse:
        if (denied := auth(request)) is not None:
            return denied
        batch = (await request.json()).get("batch") or {}
        config = _field(batch, "inputConfig", "input_config") or {}
        file_name = _field(config, "fileName", "file_name") or ""
        data = server.files.get(file_name.removeprefix("files/"))
        if data is None:
            return _error(400, f"inputConfig.fileName {file_name!r}: no such file")
        items, seen = [], set()
        for n, line in enumerate(data.decode().splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            key = row.get("key")
            if not key or key in seen or "request" not in row:
                return _error(400, f"line {n}: a unique 'key' and a 'request' are required")
            seen.add(key)
            body = _body(model, row["request"])
            if isinstance(body, str):
                return _error(400, f"line {n}: {body}")
            items.append((key, body))
        display = _field(batch, "displayName", "display_name") or ""
        job = server.add_job(
            "gemini",
            items,
            model=model,
            input_file=file_name,
            metadata={"displayName": display},
        )
        return JSONResponse(view(job))

    @app.get("/v1beta/batches")
    async def listing(
        request: Request, pageSize: int = 50, pageToken: str | None = None
    ) -> JSONResponse:
        if (denied := auth(request)) is not None:
            return denied
        start = int(pageToken or 0)  # an offset: Gemini's tokens are opaque
        page, more = server.page_after("gemini", None, start + pageSize)
        out: dict[str, Any] = {"operations": [view(j) for j in page[start:]]}
        if more:
            out["nextPageToken"] = str(start + pageSize)
        return JSONResponse(out)

    @app.get("/v1beta/batches/{bid}")
    async def retrieve(bid: str, request: Request) -> JSONResponse:
        job = lookup(request, bid)
        return job if isinstance(job, JSONResponse) else JSONResponse(view(job))

    @app.post("/v1beta/batches/{bid}:cancel")
    async def cancel(bid: str, request: Request) -> JSONResponse:
        job = lookup(request, bid)
        if isinstance(job, JSONResponse):
            return job
        server.cancel(bid)
        return JSONResponse({})
