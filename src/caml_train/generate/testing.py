"""A scripted OpenAI-compatible HTTP server for tests (ours and yours), and the plumbing every
local test server shares (`LocalServer`: uvicorn in a thread on a free 127.0.0.1 port).

It is a real FastAPI/uvicorn server on 127.0.0.1 serving `POST /v1/chat/completions`, so the code under
test goes through litellm, the OpenAI SDK and HTTP exactly as in production: point it at
`model="openai/<name>", api_base=server.api_base, api_key="x"`. A `responder(request_body, hit_number)`
decides each reply: a string (a normal completion), a `Reply` (status code, finish reason, delay,
headers), so tests can inject 429s, 500s, truncation and hangs, and count every hit.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from typing_extensions import Self


@dataclass
class Reply:
    content: str = ""
    status: int = 200
    finish_reason: str = "stop"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    error_message: str = "scripted error"


Responder = Callable[[dict[str, Any], int], "Reply | str"]


class TokenBucket:
    """A provider's rate limit for a responder: `rate` requests per second, bursts of `capacity`
    (`take()` is False when a request should get a 429)."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity = rate, max(1.0, capacity)
        self.tokens, self.stamp = self.capacity, time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


def word_tokens(messages: list[dict[str, Any]]) -> int:
    """The 'token' count the local servers report for a prompt: its words (no tokenizer)."""
    return sum(len(str(m.get("content", "")).split()) for m in messages)


def user_text(body: dict[str, Any]) -> str:
    """The concatenated user messages of a request body."""
    return "\n".join(
        str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user"
    )


# fmt: off
_VOCAB = (
    "audit", "barn", "budget", "calibration", "cohort", "committee", "contract", "crew", "data",
    "decision", "delay", "dispatch", "district", "engineer", "estimate", "evidence", "facility",
    "feed", "field", "figure", "forecast", "grant", "handler", "harvest", "hearing", "incident",
    "inspection", "invoice", "ledger", "license", "logistics", "manager", "margin", "meeting",
    "metric", "minutes", "monitor", "notice", "officer", "operator", "outbreak", "outcome",
    "permit", "pilot", "plan", "pricing", "procedure", "quarter", "record", "region", "report",
    "review", "risk", "roster", "route", "safety", "sample", "schedule", "season", "sensor",
    "shift", "site", "staff", "supplier", "survey", "target", "tender", "timeline", "trial",
    "truck", "variance", "vendor", "ward", "warehouse", "weather", "week", "workflow", "yield",
    "zone",
)
# fmt: on


def filler_text(seed_text: str, n_words: int = 700) -> str:
    """Deterministic, prompt-specific prose-like filler: distinct prompts give texts far apart in
    Jaccard distance (so dedup keeps them), equal prompts give equal texts."""
    import hashlib
    import random

    rng = random.Random(hashlib.sha256(seed_text.encode()).hexdigest())
    sentences, words = [], 0
    while words < n_words:
        length = rng.randint(8, 16)
        sentence = " ".join(rng.choice(_VOCAB) for _ in range(length))
        sentences.append(sentence.capitalize() + ".")
        words += length
    paragraphs = [" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5)]
    return "\n\n".join(paragraphs)


class LocalServer:
    """The HTTP plumbing of every local test server here: a FastAPI app (`_app()`, written by the
    subclass) served by uvicorn on a free 127.0.0.1 port in a daemon thread. `with Server(...) as
    s:` starts and stops it; `s.url` is its root, `s.api_base` the OpenAI-style `<root>/v1`."""

    name = "local test server"

    def __init__(self) -> None:
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.url}/v1"

    def _app(self) -> FastAPI:
        raise NotImplementedError

    def start(self) -> Self:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{self.name} did not start")
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


class ScriptedOpenAIServer(LocalServer):
    """Run with `with ScriptedOpenAIServer(responder) as server: ...`; `server.hits` lists bodies."""

    name = "scripted OpenAI server"

    def __init__(self, responder: Responder, model_name: str = "scripted") -> None:
        super().__init__()
        self.responder = responder
        self.model_name = model_name
        self.hits: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            return {"object": "list", "data": [{"id": self.model_name, "object": "model"}]}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            with self._lock:
                self.hits.append(body)
                number = len(self.hits)
            # The responder may be slow (e.g. a real model): keep the event loop free.
            reply = await asyncio.to_thread(self.responder, body, number)
            if isinstance(reply, str):
                reply = Reply(content=reply)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.status != 200:
                return JSONResponse(
                    {
                        "error": {
                            "message": reply.error_message,
                            "type": "scripted",
                            "code": reply.status,
                        }
                    },
                    status_code=reply.status,
                    headers=reply.headers,
                )
            prompt_tokens = word_tokens(body["messages"])
            completion_tokens = len(reply.content.split())
            return JSONResponse(
                {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", self.model_name),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply.content},
                            "finish_reason": reply.finish_reason,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                },
                headers=reply.headers,
            )

        return app

    def hit_count(self) -> int:
        with self._lock:
            return len(self.hits)
