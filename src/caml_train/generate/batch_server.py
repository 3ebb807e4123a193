"""A local OpenAI Batch API server for tests (ours and yours), on 127.0.0.1.

It implements what `caml_train.generate.batch` calls, as the OpenAI SDK sends it: `POST /v1/files`
(multipart upload), `GET /v1/files/{id}/content`, `POST /v1/batches`, `GET /v1/batches/{id}`,
`GET /v1/batches` (newest first, `after`/`limit`), `POST /v1/batches/{id}/cancel`. Batches do not
run on their own: a test moves them with `finish(batch_id)` (or `auto_finish=True`), choosing the
fate of each request with `fate(custom_id, body, batch_number) -> "ok" | "error" | "missing"`:
an error line goes to the error file, a missing request is in neither file (as when a batch
expires part-done; `expire=True` marks the batch `expired`). `submissions` counts every custom_id
ever submitted, so a test can prove that nothing was sent twice.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from typing_extensions import Self

Fate = Callable[[str, dict[str, Any], int], str]


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


class BatchAPIServer:
    """`with BatchAPIServer(reply) as server:`; `reply(body) -> str` is each request's completion."""

    def __init__(
        self,
        reply: Callable[[dict[str, Any]], str],
        *,
        fate: Fate | None = None,
        auto_finish: bool = False,
    ) -> None:
        self.reply = reply
        self.fate: Fate = fate or (lambda cid, body, n: "ok")
        self.auto_finish = auto_finish
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.submissions: Counter[str] = Counter()
        self.lock = threading.RLock()
        self.port: int | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------------------ test controls

    def finish(self, batch_id: str, *, expire: bool = False) -> None:
        """Run a batch: write its output and error files and end it (completed or expired)."""
        with self.lock:
            batch = self.batches[batch_id]
            if batch["status"] not in ("validating", "in_progress"):
                return
            number = self.order.index(batch_id) + 1
            out, err = [], []
            for line in self.files[batch["input_file_id"]].decode().splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                cid, body = item["custom_id"], item["body"]
                fate = self.fate(cid, body, number)
                if fate == "missing":
                    continue
                if fate == "error":
                    err.append(
                        {
                            "id": f"batch_req_{uuid.uuid4().hex[:10]}",
                            "custom_id": cid,
                            "response": {
                                "status_code": 500,
                                "request_id": "r",
                                "body": {
                                    "error": {"message": "injected failure", "type": "server_error"}
                                },
                            },
                            "error": None,
                        }
                    )
                    continue
                content = self.reply(body)
                prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
                out.append(
                    {
                        "id": f"batch_req_{uuid.uuid4().hex[:10]}",
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
                                        "message": {"role": "assistant", "content": content},
                                    }
                                ],
                                "usage": {
                                    "prompt_tokens": prompt,
                                    "completion_tokens": len(content.split()),
                                    "total_tokens": prompt + len(content.split()),
                                },
                            },
                        },
                        "error": None,
                    }
                )
            for name, rows in (("output_file_id", out), ("error_file_id", err)):
                if rows:
                    fid = f"file-{uuid.uuid4().hex[:12]}"
                    self.files[fid] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                    batch[name] = fid
            batch["status"] = "expired" if expire else "completed"
            batch["request_counts"] = {
                "total": batch["request_counts"]["total"],
                "completed": len(out),
                "failed": len(err),
            }
            batch["completed_at"] = int(time.time())

    def in_flight(self) -> list[str]:
        with self.lock:
            return [
                b for b in self.order if self.batches[b]["status"] in ("validating", "in_progress")
            ]

    # ------------------------------------------------------------------------------------- server

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/files")
        async def upload(request: Request) -> JSONResponse:
            data, purpose = _multipart_file(request.headers["content-type"], await request.body())
            fid = f"file-{uuid.uuid4().hex[:12]}"
            with self.lock:
                self.files[fid] = data
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
                return JSONResponse({"error": {"message": f"no file {fid}"}}, status_code=404)
            return Response(data, media_type="application/octet-stream")

        @app.post("/v1/batches")
        async def create(request: Request) -> JSONResponse:
            body = await request.json()
            with self.lock:
                data = self.files.get(body["input_file_id"])
                if data is None:
                    return JSONResponse(
                        {"error": {"message": "unknown input file"}}, status_code=400
                    )
                lines = [json.loads(x) for x in data.decode().splitlines() if x.strip()]
                self.submissions.update(item["custom_id"] for item in lines)
                bid = f"batch_{uuid.uuid4().hex[:12]}"
                self.batches[bid] = {
                    "id": bid,
                    "object": "batch",
                    "endpoint": body["endpoint"],
                    "input_file_id": body["input_file_id"],
                    "completion_window": body["completion_window"],
                    "status": "in_progress",
                    "created_at": int(time.time()),
                    "metadata": body.get("metadata"),
                    "output_file_id": None,
                    "error_file_id": None,
                    "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                }
                self.order.append(bid)
            if self.auto_finish:
                self.finish(bid)
            return JSONResponse(self.batches[bid])

        @app.get("/v1/batches/{bid}")
        async def retrieve(bid: str) -> JSONResponse:
            with self.lock:
                batch = self.batches.get(bid)
                if batch is None:
                    return JSONResponse({"error": {"message": f"no batch {bid}"}}, status_code=404)
                return JSONResponse(dict(batch))

        @app.get("/v1/batches")
        async def listing(after: str | None = None, limit: int = 20) -> JSONResponse:
            with self.lock:
                newest = list(reversed(self.order))
                if after in newest:
                    newest = newest[newest.index(after) + 1 :]
                page = newest[:limit]
                return JSONResponse(
                    {
                        "object": "list",
                        "data": [self.batches[b] for b in page],
                        "first_id": page[0] if page else None,
                        "last_id": page[-1] if page else None,
                        "has_more": len(newest) > limit,
                    }
                )

        @app.post("/v1/batches/{bid}/cancel")
        async def cancel(bid: str) -> JSONResponse:
            with self.lock:
                batch = self.batches[bid]
                if batch["status"] in ("validating", "in_progress"):
                    batch["status"] = "cancelled"
                return JSONResponse(dict(batch))

        return app

    def start(self) -> Self:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("batch API server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
