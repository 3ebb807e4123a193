"""Anthropic Message Batches endpoints of the local batch server (`batch_server.BatchAPIServer`).

As documented by Anthropic: `POST /v1/messages/batches` (requests inline, at most 100,000 requests
or 256 MB), `GET /v1/messages/batches/{id}`, `GET /v1/messages/batches` (newest first,
`after_id`/`limit`), `GET /v1/messages/batches/{id}/results` (JSONL, once the batch has ended:
one line per request, `succeeded`, `errored`, `canceled` or `expired`) and
`POST /v1/messages/batches/{id}/cancel`. Requests need `x-api-key` and `anthropic-version`; a
request that breaks the API's rules (custom_id pattern, a system message inside `messages`, no
`max_tokens`) is refused with a 400 as Anthropic would, so a client bug fails the test.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from caml_train.generate.batch_server import Job, rfc3339

if TYPE_CHECKING:
    from caml_train.generate.batch_server import BatchAPIServer

MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 10**6
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"type": "error", "error": {"type": kind, "message": message}}, status_code=status
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, dict))


def _body(params: dict[str, Any]) -> dict[str, Any] | str:
    """The request as an OpenAI-shaped body (for the server's `reply`), or what is wrong with it."""
    if not isinstance(params.get("max_tokens"), int) or params["max_tokens"] < 1:
        return "params.max_tokens: an integer >= 1 is required"
    if not params.get("model"):
        return "params.model is required"
    messages = params.get("messages") or []
    if not messages:
        return "params.messages: at least one message is required"
    if any(m.get("role") not in ("user", "assistant") for m in messages):
        return "params.messages: roles are 'user' or 'assistant' (a system prompt is params.system)"
    system = params.get("system")
    out = [{"role": "system", "content": _text(system)}] if system else []
    out += [{"role": m["role"], "content": _text(m.get("content", ""))} for m in messages]
    return {"model": params["model"], "messages": out}


def view(server: BatchAPIServer, job: Job) -> dict[str, Any]:
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if job.running:
        counts["processing"] = len(job.items)
    else:
        for line in result_lines(job):
            counts[line["result"]["type"]] += 1
    ended = not job.running
    return {
        "id": job.id,
        "type": "message_batch",
        "processing_status": "ended" if ended else "in_progress",
        "request_counts": counts,
        "ended_at": rfc3339(job.ended),
        "created_at": rfc3339(job.created),
        "expires_at": rfc3339(job.created + 24 * 3600),
        "archived_at": None,
        "cancel_initiated_at": rfc3339(job.ended) if job.state == "cancelled" else None,
        "results_url": f"{server.url}/v1/messages/batches/{job.id}/results" if ended else None,
    }


def result_lines(job: Job) -> list[dict[str, Any]]:
    """One line per request of an ended batch, in Anthropic's results format."""
    lines = []
    for cid, body in job.items:
        o = job.outcomes.get(cid)
        if o is None:
            result: dict[str, Any] = {"type": "canceled" if job.state == "cancelled" else "expired"}
        elif not o.ok:
            result = {
                "type": "errored",
                "error": {"type": "error", "error": {"type": "api_error", "message": o.error}},
            }
        else:
            result = {
                "type": "succeeded",
                "message": {
                    "id": f"msg_{uuid.uuid4().hex[:20]}",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": o.content}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": o.prompt_tokens,
                        "output_tokens": o.completion_tokens,
                    },
                },
            }
        lines.append({"custom_id": cid, "result": result})
    return lines


def add_routes(app: FastAPI, server: BatchAPIServer) -> None:
    def auth(request: Request) -> JSONResponse | None:
        if not request.headers.get("x-api-key"):
            return _error(401, "authentication_error", "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version header is required")
        return None

    def lookup(request: Request, bid: str) -> Job | JSONResponse:
        """The batch, or the error the API answers (no key, no such batch)."""
        if (denied := auth(request)) is not None:
            return denied
        job = server.jobs.get(bid)
        if job is None or job.provider != "anthropic":
            return _error(404, "not_found_error", f"no message batch {bid}")
        return job

    @app.post("/v1/messages/batches")
    async def create(request: Request) -> JSONResponse:
        if (denied := auth(request)) is not None:
            return denied
        raw = await request.body()
        if len(raw) > MAX_BYTES:
            return _error(413, "request_too_large", f"a batch is at most {MAX_BYTES} bytes")
        requests = json.loads(raw).get("requests") or []
        if not requests or len(requests) > MAX_REQUESTS:
            return _error(400, "invalid_request_error", f"1 to {MAX_REQUESTS} requests per batch")
        items, seen = [], set()
        for i, item in enumerate(requests):
            cid = item.get("custom_id", "")
            if not CUSTOM_ID.match(cid) or cid in seen:
                return _error(
                    400, "invalid_request_error", f"requests.{i}.custom_id: {cid!r} invalid"
                )
            seen.add(cid)
            body = _body(item.get("params") or {})
            if isinstance(body, str):
                return _error(400, "invalid_request_error", f"requests.{i}.{body}")
            items.append((cid, body))
        job = server.add_job("anthropic", items, model=items[0][1]["model"])
        return JSONResponse(view(server, job))

    @app.get("/v1/messages/batches")
    async def listing(
        request: Request, limit: int = 20, after_id: str | None = None
    ) -> JSONResponse:
        if (denied := auth(request)) is not None:
            return denied
        page, more = server.page_after("anthropic", after_id, limit)
        return JSONResponse(
            {
                "data": [view(server, j) for j in page],
                "has_more": more,
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            }
        )

    @app.get("/v1/messages/batches/{bid}")
    async def retrieve(bid: str, request: Request) -> JSONResponse:
        job = lookup(request, bid)
        return job if isinstance(job, JSONResponse) else JSONResponse(view(server, job))

    @app.get("/v1/messages/batches/{bid}/results")
    async def results(bid: str, request: Request) -> Response:
        job = lookup(request, bid)
        if isinstance(job, JSONResponse):
            return job
        if job.running:
            return _error(400, "invalid_request_error", f"message batch {bid} has not ended")
        text = "".join(json.dumps(line) + "\n" for line in result_lines(job))
        return Response(text, media_type="application/x-jsonl")

    @app.post("/v1/messages/batches/{bid}/cancel")
    async def cancel(bid: str, request: Request) -> JSONResponse:
        job = lookup(request, bid)
        if isinstance(job, JSONResponse):
            return job
        return JSONResponse(view(server, server.cancel(bid)))
