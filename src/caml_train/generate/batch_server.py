"""A local batch API server for tests (ours and yours), on 127.0.0.1: OpenAI, Anthropic and Gemini.

One server, one store of batches, three providers' endpoints as their clients send them:

- OpenAI Batch API (this module; the OpenAI SDK at `server.api_base`): `POST /v1/files`
  (multipart upload), `GET /v1/files/{id}/content`, `POST /v1/batches`, `GET /v1/batches/{id}`,
  `GET /v1/batches` (newest first, `after`/`limit`), `POST /v1/batches/{id}/cancel`;
- Anthropic Message Batches (`batch_server_anthropic`; at `server.url`);
- Gemini Developer API batch mode (`batch_server_gemini`; at `server.url`).

Batches do not run on their own: a test moves them with `finish(batch_id)` (or `auto_finish=True`),
choosing the fate of each request with `fate(custom_id, body, batch_number) -> "ok" | "error" |
"missing"`: an error is the provider's per-request error, a missing request has no result (as when
a batch expires part-done; `expire=True` ends the batch `expired`). `cancel(batch_id)` (or the
provider's cancel endpoint) ends a batch with no results. `body` is OpenAI-shaped (`model`,
`messages`) whatever the provider, so one `reply(body) -> str` serves all three. `submissions`
counts every custom_id ever submitted, so a test can prove that nothing was sent twice.

The HTTP plumbing (uvicorn in a thread on a free port) is `testing.LocalServer`.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from caml_train.generate.testing import LocalServer, word_tokens

Fate = Callable[[str, dict[str, Any], int], str]
OPENAI_MAX_REQUESTS = 50_000


@dataclass
class Outcome:
    """One request's result once its batch ran: a completion, or the provider's error."""

    ok: bool
    content: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str = "injected failure"


@dataclass
class Job:
    """A batch as the server keeps it, whatever provider it came through."""

    id: str
    provider: str
    number: int
    items: list[tuple[str, dict[str, Any]]]  # (custom_id, OpenAI-shaped body)
    model: str | None = None
    input_file: str | None = None
    metadata: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    state: str = "in_progress"  # in_progress | completed | expired | cancelled
    ended: float | None = None
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # role (output, error) -> file id

    @property
    def running(self) -> bool:
        return self.state == "in_progress"


def rfc3339(ts: float | None) -> str | None:
    """A UTC timestamp the way Anthropic and Google write them."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def api_error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"message": message, **extra}}, status_code=status)


def _multipart_file(content_type: str, body: bytes) -> tuple[bytes, str]:
    """The uploaded file and its purpose, parsed with the standard library (no python-multipart)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    data, purpose = b"", ""
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if name == "file":
            data = payload
        elif name == "purpose":
            purpose = payload.decode()
    return data, purpose


class BatchAPIServer(LocalServer):
    """`with BatchAPIServer(reply) as server:`; `reply(body) -> str` is each request's completion."""

    name = "batch API server"

    def __init__(
        self,
        reply: Callable[[dict[str, Any]], str],
        *,
        fate: Fate | None = None,
        auto_finish: bool = False,
    ) -> None:
        super().__init__()
        self.reply = reply
        self.fate: Fate = fate or (lambda cid, body, n: "ok")
        self.auto_finish = auto_finish
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, Job] = {}
        self.order: list[str] = []
        self.submissions: Counter[str] = Counter()
        self.lock = threading.RLock()
        self._faults: list[tuple[str, int]] = []  # (path fragment, status), the next ones first

    # ------------------------------------------------------------------------------ test controls

    def add_job(self, provider: str, items: list[tuple[str, dict[str, Any]]], **kw: Any) -> Job:
        """Record a new batch (every provider's create endpoint ends here)."""
        with self.lock:
            prefix = {"openai": "batch_", "anthropic": "msgbatch_", "gemini": ""}[provider]
            job = Job(
                id=f"{prefix}{uuid.uuid4().hex[:16]}",
                provider=provider,
                number=len(self.order) + 1,
                items=items,
                **kw,
            )
            self.submissions.update(cid for cid, _ in items)
            self.jobs[job.id] = job
            self.order.append(job.id)
        if self.auto_finish:
            self.finish(job.id)
        return job

    def store_file(self, data: bytes, prefix: str = "") -> str:
        fid = f"{prefix}{uuid.uuid4().hex[:12]}"
        with self.lock:
            self.files[fid] = data
        return fid

    def finish(self, batch_id: str, *, expire: bool = False) -> None:
        """Run a batch: each request's fate decides its result; the batch ends completed or
        expired, with its provider's result files written."""
        with self.lock:
            job = self.jobs[batch_id]
            if not job.running:
                return
            for cid, body in job.items:
                fate = self.fate(cid, body, job.number)
                if fate == "error":
                    job.outcomes[cid] = Outcome(ok=False)
                elif fate == "ok":
                    content = self.reply(body)
                    job.outcomes[cid] = Outcome(
                        ok=True,
                        content=content,
                        prompt_tokens=word_tokens(body["messages"]),
                        completion_tokens=len(content.split()),
                    )
            self._end(job, "expired" if expire else "completed")

    def cancel(self, batch_id: str) -> Job:
        """End a running batch with no results (what a provider's cancel endpoint does here)."""
        with self.lock:
            job = self.jobs[batch_id]
            if job.running:
                self._end(job, "cancelled")
            return job

    def _end(self, job: Job, state: str) -> None:
        job.state, job.ended = state, time.time()
        if job.provider == "openai":
            self._openai_files(job)
        elif job.provider == "gemini":
            from caml_train.generate.batch_server_gemini import write_output

            write_output(self, job)

    def fail_next(self, count: int, status: int = 503, path: str = "") -> None:
        """Answer the next `count` requests whose path contains `path` with `status` (and
        `retry-after: 0`) before they reach the API: a transient provider fault, nothing done."""
        with self.lock:
            self._faults += [(path, status)] * count

    def page_after(self, provider: str, after: str | None, limit: int) -> tuple[list[Job], bool]:
        """One page of `provider`'s batches, newest first, after the batch `after` (OpenAI's and
        Anthropic's list paging); and whether more follow."""
        with self.lock:
            newest = [self.jobs[b] for b in reversed(self.order)]
            newest = [j for j in newest if j.provider == provider]
            ids = [j.id for j in newest]
            if after in ids:
                newest = newest[ids.index(after) + 1 :]
            return newest[:limit], len(newest) > limit

    def in_flight(self) -> list[str]:
        with self.lock:
            return [b for b in self.order if self.jobs[b].running]

    # ------------------------------------------------------------------------------------- server

    def _app(self) -> FastAPI:
        from caml_train.generate import batch_server_anthropic, batch_server_gemini

        app = FastAPI()

        @app.middleware("http")
        async def faults(request: Request, call_next: Any) -> Response:
            with self.lock:
                hit = next((f for f in self._faults if f[0] in request.url.path), None)
                if hit is not None:
                    self._faults.remove(hit)
            if hit is not None:
                return JSONResponse(
                    {"error": {"message": "injected transient fault", "type": "overloaded"}},
                    status_code=hit[1],
                    headers={"retry-after": "0"},
                )
            return await call_next(request)

        self._openai_routes(app)
        batch_server_anthropic.add_routes(app, self)
        batch_server_gemini.add_routes(app, self)
        return app

    # ------------------------------------------------------------------------------------- OpenAI

    def _openai_view(self, job: Job) -> dict[str, Any]:
        status = {"in_progress": "in_progress"}.get(job.state, job.state)
        ok = sum(1 for o in job.outcomes.values() if o.ok)
        return {
            "id": job.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": job.input_file,
            "completion_window": "24h",
            "status": status,
            "created_at": int(job.created),
            "completed_at": int(job.ended) if job.ended and job.state == "completed" else None,
            "metadata": job.metadata,
            "output_file_id": job.files.get("output"),
            "error_file_id": job.files.get("error"),
            "request_counts": {
                "total": len(job.items),
                "completed": ok,
                "failed": len(job.outcomes) - ok,
            },
        }

    def _openai_files(self, job: Job) -> None:
        out, err = [], []
        for cid, body in job.items:
            o = job.outcomes.get(cid)
            if o is None:
                continue
            rid = f"batch_req_{uuid.uuid4().hex[:10]}"
            if not o.ok:
                err.append(
                    {
                        "id": rid,
                        "custom_id": cid,
                        "response": {
                            "status_code": 500,
                            "request_id": "r",
                            "body": {"error": {"message": o.error, "type": "server_error"}},
                        },
                        "error": None,
                    }
                )
                continue
            out.append(
                {
                    "id": rid,
                    "custom_id": cid,
                    "response": {
                        "status_code": 200,
                        "request_id": "r",
                        "body": {
                            "id": f"chatcmpl-{uuid.uuid4().hex[:8]}",
                            "object": "chat.completion",
                            "model": body.get("model"),
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": o.content},
                                }
                            ],
                            "usage": {
                                "prompt_tokens": o.prompt_tokens,
                                "completion_tokens": o.completion_tokens,
                                "total_tokens": o.prompt_tokens + o.completion_tokens,
                            },
                        },
                    },
                    "error": None,
                }
            )
        for role, rows in (("output", out), ("error", err)):
            if rows:
                data = "".join(json.dumps(r) + "\n" for r in rows).encode()
                job.files[role] = self.store_file(data, "file-")

    def _openai_routes(self, app: FastAPI) -> None:
        @app.post("/v1/files")
        async def upload(request: Request) -> JSONResponse:
            data, purpose = _multipart_file(request.headers["content-type"], await request.body())
            fid = self.store_file(data, "file-")
            return JSONResponse(
                {
                    "id": fid,
                    "object": "file",
                    "bytes": len(data),
                    "created_at": int(time.time()),
                    "filename": "input.jsonl",
                    "purpose": purpose,
                    "status": "processed",
                }
            )

        @app.get("/v1/files/{fid}/content")
        async def content(fid: str) -> Response:
            with self.lock:
                data = self.files.get(fid)
            if data is None:
                return api_error(404, f"no file {fid}")
            return Response(data, media_type="application/octet-stream")

        @app.post("/v1/batches")
        async def create(request: Request) -> JSONResponse:
            body = await request.json()
            with self.lock:
                data = self.files.get(body["input_file_id"])
            if data is None:
                return api_error(400, "unknown input file")
            lines = [json.loads(x) for x in data.decode().splitlines() if x.strip()]
            ids = [item["custom_id"] for item in lines]
            if len(ids) != len(set(ids)):
                return api_error(400, "custom_id values must be unique within a batch")
            if len(ids) > OPENAI_MAX_REQUESTS:
                return api_error(400, f"at most {OPENAI_MAX_REQUESTS} requests per batch")
            job = self.add_job(
                "openai",
                [(item["custom_id"], item["body"]) for item in lines],
                input_file=body["input_file_id"],
                metadata=body.get("metadata"),
            )
            return JSONResponse(self._openai_view(job))

        @app.get("/v1/batches/{bid}")
        async def retrieve(bid: str) -> JSONResponse:
            with self.lock:
                job = self.jobs.get(bid)
                if job is None or job.provider != "openai":
                    return api_error(404, f"no batch {bid}")
                return JSONResponse(self._openai_view(job))

        @app.get("/v1/batches")
        async def listing(after: str | None = None, limit: int = 20) -> JSONResponse:
            page, more = self.page_after("openai", after, limit)
            return JSONResponse(
                {
                    "object": "list",
                    "data": [self._openai_view(j) for j in page],
                    "first_id": page[0].id if page else None,
                    "last_id": page[-1].id if page else None,
                    "has_more": more,
                }
            )

        @app.post("/v1/batches/{bid}/cancel")
        async def cancel(bid: str) -> JSONResponse:
            if bid not in self.jobs:
                return api_error(404, f"no batch {bid}")
            return JSONResponse(self._openai_view(self.cancel(bid)))
