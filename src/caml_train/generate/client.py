"""The one place that talks to a model API: litellm with our own retries, backoff and accounting.

litellm gives one call for every provider (`openai/gpt-4o-mini`, `anthropic/...`, `openai/<name>` on a
vLLM/TGI `api_base`, ...). Its own and the OpenAI SDK's retries are switched off (`max_retries=0`) so
that every attempt is visible here: rate limits (429), server errors (5xx), timeouts and dropped
connections back off exponentially with jitter (honouring `Retry-After` when the server sends one);
anything else (400, 401, 404, a context overflow) fails at once because repeating it only costs money.

Importing litellm normally fetches a remote price list and may start telemetry; `import_litellm()`
sets `LITELLM_LOCAL_MODEL_COST_MAP=True` / `LITELLM_OFFLINE_MODE=true` first (unless the caller set
them) so generation never depends on anything but the configured endpoint, and prices come from the
copy bundled with the installed litellm.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from caml_train.generate.cache import Usage

RETRYABLE_STATUS = {408, 409, 425, 429}


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


def status_code(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def is_retryable(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts and connection failures are worth another attempt."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError, EmptyResponseError)):
        return True
    litellm = import_litellm()
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
    return f"{type(exc).__name__}{f' ({code})' if code else ''}: {text}"


class LLMClient:
    """Async chat completions through litellm with retries; one instance per run."""

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        self._sleep = sleep
        self.retries = 0  # attempts beyond the first, over the client's life
        self.retry_reasons: dict[str, int] = {}
        self._litellm = import_litellm()

    async def _call(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Any:
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
        return await self._litellm.acompletion(**kwargs)

    def _cost(self, response: Any) -> tuple[float, bool]:
        """Price from litellm's bundled map; an unknown model costs 0 and is flagged, not guessed."""
        try:
            cost = self._litellm.completion_cost(completion_response=response)
        except Exception:  # noqa: BLE001 - litellm raises many types for "model not in price map"
            return 0.0, False
        if cost is None:
            return 0.0, False
        return float(cost), True

    async def complete(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Completion:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._call(messages, params)
                if response is None or not getattr(response, "choices", None):
                    raise EmptyResponseError(f"no choices in the response: {response!r:.200}")
            except Exception as exc:  # classified below, never swallowed
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
            choice = response.choices[0]
            text = getattr(choice.message, "content", None) or ""
            usage_obj = getattr(response, "usage", None)
            usage = Usage(
                prompt_tokens=int(getattr(usage_obj, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage_obj, "completion_tokens", 0) or 0),
            )
            cost, known = self._cost(response)
            return Completion(
                text=text,
                finish_reason=getattr(choice, "finish_reason", None),
                usage=usage,
                cost_usd=cost,
                cost_known=known,
                attempts=attempt,
                response_model=getattr(response, "model", None),
            )
