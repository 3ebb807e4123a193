"""The one place that talks to a model API: our own retries, backoff and accounting over two transports.

- litellm gives one call for every provider (`openai/gpt-4o-mini`, `anthropic/...`, ...);
- an OpenAI-compatible server you run yourself (`openai/<name>` with an `api_base`: vLLM, TGI,
  llama.cpp, the test server) is called directly over HTTP (aiohttp, a litellm dependency;
  one pooled keep-alive connection per request in flight), because importing litellm takes seconds (about 4 s on a quiet machine, 12 s
  on a busy one) and each litellm call costs ~10 ms of event-loop CPU (logging objects, a price
  lookup, response rebuilding), which at 32 requests in flight keeps the client well below what
  the server allows. Prices for this path come from the price map bundled with the installed
  litellm, read as data (`bundled_price`) without importing it. `transport="litellm"` forces the
  litellm path for such a server too.

Retries of litellm and of the OpenAI SDK are switched off (`max_retries=0`) so that every attempt
is visible here: rate limits (429), server errors (5xx), timeouts and dropped connections back off
exponentially with jitter (honouring `Retry-After` when the server sends one); anything else (400,
401, 404, a context overflow) fails at once because repeating it only costs money.

Importing litellm normally fetches a remote price list and may start telemetry; `import_litellm()`
sets `LITELLM_LOCAL_MODEL_COST_MAP=True` / `LITELLM_OFFLINE_MODE=true` first (unless the caller set
them) so generation never depends on anything but the configured endpoint, and prices come from the
copy bundled with the installed litellm. It is imported only when the litellm transport is used.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import logging
import os
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from caml_train.generate.cache import Usage

RETRYABLE_STATUS = {408, 409, 425, 429}
Transport = Literal["auto", "litellm", "http"]
_PRICE_MAP = "model_prices_and_context_window_backup.json"


def import_litellm() -> Any:
    """Import litellm with network side effects (remote cost map, telemetry, callbacks) disabled."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    import litellm

    # Our own retry log lines and the manifest report failures; litellm's per-call chatter is noise.
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    litellm.drop_params = True  # a provider that lacks e.g. top_p ignores it instead of failing
    for attr in ("callbacks", "success_callback", "failure_callback", "_async_success_callback"):
        if isinstance(getattr(litellm, attr, None), list):
            setattr(litellm, attr, [])
    return litellm


class RetryPolicy(BaseModel):
    """Exponential backoff with 'equal jitter': delay = d/2 + U(0, d/2), d = min(max, base * 2^k)."""

    max_attempts: int = Field(6, ge=1)
    base_delay: float = Field(1.0, ge=0.0)
    max_delay: float = Field(60.0, ge=0.0)
    timeout: float = Field(600.0, gt=0.0, description="seconds per attempt")

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        d = min(self.max_delay, self.base_delay * (2**attempt))
        jittered = d / 2 + rng.uniform(0, d / 2)
        if retry_after is not None:
            jittered = max(jittered, min(retry_after, self.max_delay))
        return jittered


class GenerationError(RuntimeError):
    """A request that failed for good (non-retryable, or retries exhausted)."""

    def __init__(self, message: str, attempts: int, retryable: bool) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.retryable = retryable


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    usage: Usage
    cost_usd: float
    cost_known: bool
    attempts: int
    response_model: str | None


class EmptyResponseError(RuntimeError):
    """A 200 reply without choices: a proxy hiccup, worth another attempt."""


# The names the OpenAI SDK (and litellm) give these statuses, so failures read the same either way.
_STATUS_NAMES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}


class EndpointError(RuntimeError):
    """An HTTP error status from an OpenAI-compatible server (the direct HTTP transport)."""

    def __init__(self, status_code: int, message: str, response: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response
        default = "InternalServerError" if status_code >= 500 else "APIStatusError"
        self.kind = _STATUS_NAMES.get(status_code, default)


@functools.lru_cache(maxsize=1)
def _price_map() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / _PRICE_MAP
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def bundled_price(
    model: str, usage: Usage, response_model: str | None = None
) -> tuple[float, bool]:
    """Price of one reply from litellm's bundled price map (read as data, litellm not imported).

    Looked up as given, without its provider prefix, then by the model the server named; a model
    that is not there costs 0 and is flagged unknown, never guessed.
    """
    prices = _price_map()
    names = [model, model.split("/", 1)[-1]]
    if response_model:
        names += [response_model, response_model.split("/", 1)[-1]]
    for name in names:
        entry = prices.get(name)
        if isinstance(entry, dict) and "input_cost_per_token" in entry:
            cost = usage.prompt_tokens * float(entry.get("input_cost_per_token") or 0.0)
            cost += usage.completion_tokens * float(entry.get("output_cost_per_token") or 0.0)
            return cost, True
    return 0.0, False


def status_code(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def is_retryable(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts and connection failures are worth another attempt."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError, EmptyResponseError)):
        return True
    aiohttp = sys.modules.get("aiohttp")  # the HTTP transport: dropped or refused connections
    if aiohttp is not None and isinstance(
        exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)
    ):
        return True
    litellm = sys.modules.get("litellm")  # only an exception raised by litellm can be one of these
    if litellm is not None:
        transient = (
            litellm.RateLimitError,
            litellm.Timeout,
            litellm.APIConnectionError,
            litellm.InternalServerError,
            litellm.ServiceUnavailableError,
            litellm.BadGatewayError,
        )
        if isinstance(exc, transient):
            return True
    code = status_code(exc)
    return code is not None and (code in RETRYABLE_STATUS or code >= 500)


def retry_after_seconds(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def describe(exc: BaseException) -> str:
    code = status_code(exc)
    text = " ".join(str(exc).split())[:300]
    kind = getattr(exc, "kind", None) or type(exc).__name__
    return f"{kind}{f' ({code})' if code else ''}: {text}"


class LLMClient:
    """Async chat completions with retries; one instance per run (see the module for transports)."""

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: Transport = "auto",
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        self._sleep = sleep
        self.retries = 0  # attempts beyond the first, over the client's life
        self.retry_reasons: dict[str, int] = {}
        if transport == "auto":
            direct = bool(api_base) and model.startswith("openai/")
            transport = "http" if direct else "litellm"
        if transport == "http" and not api_base:
            raise ValueError("the http transport needs an api_base (an OpenAI-compatible server)")
        if transport not in ("http", "litellm"):
            raise ValueError(f"transport must be 'auto', 'litellm' or 'http', not {transport!r}")
        self.transport: Transport = transport
        self._litellm: Any = None
        self._http: Any = None  # aiohttp.ClientSession, made in the running loop
        self._http_loop: Any = None

    # ------------------------------------------------------------------------------- transports

    @property
    def litellm(self) -> Any:
        if self._litellm is None:
            self._litellm = import_litellm()
        return self._litellm

    async def _call(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Any:
        if self.transport == "http":
            return await self._call_http(messages, params)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "timeout": self.retry.timeout,
            "max_retries": 0,
            "num_retries": 0,
            **params,
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        return await self.litellm.acompletion(**kwargs)

    def _http_session(self) -> Any:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._http is None or self._http_loop is not loop:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),  # the runner's semaphore bounds it
                timeout=aiohttp.ClientTimeout(total=self.retry.timeout),
            )
            self._http_loop = loop
        return self._http

    async def _call_http(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Any:
        assert self.api_base
        body = {"model": self.model.removeprefix("openai/"), "messages": messages, **params}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = self.api_base.rstrip("/") + "/chat/completions"
        async with self._http_session().post(url, json=body, headers=headers) as response:
            raw = await response.read()
            status, reply_headers = response.status, response.headers
        text = raw.decode("utf-8", errors="replace")
        if status >= 400:
            try:
                detail = json.loads(text).get("error", {}).get("message") or text
            except (ValueError, AttributeError):
                detail = text
            raise EndpointError(status, f"HTTP {status}: {detail}", _ErrorResponse(reply_headers))
        try:
            return _HTTPReply(json.loads(text))
        except ValueError as ex:
            raise EmptyResponseError(f"reply is not JSON: {text!r:.200}") from ex

    async def aclose(self) -> None:
        """Close pooled HTTP connections (the litellm transport keeps its own)."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _cost(self, response: Any, usage: Usage) -> tuple[float, bool]:
        """Price of one reply; an unknown model costs 0 and is flagged, not guessed."""
        if isinstance(response, _HTTPReply):
            return bundled_price(self.model, usage, response.model)
        hidden = getattr(response, "_hidden_params", None) or {}
        cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
        if cost is None:  # litellm prices every reply it returns; ask only if it did not
            try:
                cost = self.litellm.completion_cost(completion_response=response)
            except Exception:  # noqa: BLE001 - litellm raises many types for "model not in price map"
                return 0.0, False
        if cost is None:
            return 0.0, False
        return float(cost), True

    # ----------------------------------------------------------------------------------- calling

    async def complete(
        self,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        on_attempt: Callable[[int | None, Any], None] | None = None,
    ) -> Completion:
        """`on_attempt(status, headers)` sees every attempt (the adaptive concurrency controller)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._call(messages, params)
                if response is None or not getattr(response, "choices", None):
                    raise EmptyResponseError(f"no choices in the response: {response!r:.200}")
            except Exception as exc:  # classified below, never swallowed
                if on_attempt is not None:
                    on_attempt(
                        status_code(exc), getattr(getattr(exc, "response", None), "headers", None)
                    )
                retryable = is_retryable(exc)
                if not retryable or attempt >= self.retry.max_attempts:
                    why = "retries exhausted" if retryable else "not retryable"
                    raise GenerationError(
                        f"{describe(exc)} [{why} after {attempt} attempt(s)]", attempt, retryable
                    ) from exc
                self.retries += 1
                reason = str(status_code(exc) or type(exc).__name__)
                self.retry_reasons[reason] = self.retry_reasons.get(reason, 0) + 1
                await self._sleep(
                    self.retry.delay(attempt - 1, self._rng, retry_after_seconds(exc))
                )
                continue
            if on_attempt is not None:
                on_attempt(200, getattr(response, "headers", None))
            choice = response.choices[0]
            text = getattr(choice.message, "content", None) or ""
            usage_obj = getattr(response, "usage", None)
            usage = Usage(
                prompt_tokens=int(getattr(usage_obj, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage_obj, "completion_tokens", 0) or 0),
            )
            cost, known = self._cost(response, usage)
            return Completion(
                text=text,
                finish_reason=getattr(choice, "finish_reason", None),
                usage=usage,
                cost_usd=cost,
                cost_known=known,
                attempts=attempt,
                response_model=getattr(response, "model", None),
            )


class _Obj:
    """Attribute access over a decoded JSON object (the shape litellm's responses have)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        value = self._data.get(name) if isinstance(self._data, dict) else None
        return _Obj(value) if isinstance(value, dict) else value

    def __repr__(self) -> str:
        return repr(self._data)


@dataclass
class _ErrorResponse:
    headers: Any  # read by retry_after_seconds (case-insensitive in aiohttp)


class _HTTPReply(_Obj):
    """A chat completion decoded from the HTTP transport."""

    @property
    def choices(self) -> list[_Obj]:
        raw = self._data.get("choices") if isinstance(self._data, dict) else None
        return [_Obj(c) for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []
