"""What a provider's batch API must offer the one batch runner (`batch.BatchRunner`), and the retry
every adapter's control calls share.

An adapter turns a request into one line of the provider's input format (`line`), sends a batch
(`upload` where the provider takes a file first, then `create`), finds a batch a killed process
created but never recorded (`find`), reports a batch's state in the runner's words (`retrieve` ->
`Remote`) and reads its per-request results (`results` -> `ItemResult`). Everything else (chunking
within `max_requests`/`max_bytes`, the state file, re-attaching, rounds of resubmission, the
cache, prices) is the runner's and the same for every provider.

Control calls (upload, create, retrieve, list, results) retry rate limits, server errors and
dropped connections with the generation client's backoff (`client.RetryPolicy`); a rejected key
is the user's to fix (`ConfigError`); any other failure is a `client.GenerationError`, which the
runner reports against the batch's requests (a rerun first looks for the batch, then retries).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, ClassVar, TypeVar

from caml_train.generate.cache import Usage
from caml_train.generate.client import RETRYABLE_STATUS, GenerationError, RetryPolicy

if TYPE_CHECKING:
    from caml_train.generate.batch import BatchRecord

T = TypeVar("T")
ENDED = ("completed", "expired", "cancelled", "failed")
CONTROL_RETRY = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=30.0, timeout=600.0)
# How the providers name why a reply stopped, in the OpenAI words the rest of the pipeline reads
# ("length" is a truncated document).
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "STOP": "stop",
    "MAX_TOKENS": "length",
}


@dataclass
class Remote:
    """A batch as the provider reports it. `status` is the provider's own word (it goes into the
    state file); `outcome`, once `ended`, is one of `ENDED`."""

    id: str
    status: str
    ended: bool
    outcome: str | None = None
    raw: Any = None
    requests: int | None = None
    created_at: float | None = None  # epoch seconds


@dataclass
class ItemResult:
    """One request's result: a completion (`text`), or the provider's error for it (`error`)."""

    key: str
    text: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    response_model: str | None = None


def openai_shaped(batch: Any) -> Remote:
    """A batch object in OpenAI's shape (the OpenAI SDK's, litellm's `LiteLLMBatch`)."""
    return Remote(
        id=batch.id,
        status=batch.status,
        ended=batch.status in ENDED,
        outcome=batch.status if batch.status in ENDED else None,
        raw=batch,
        requests=getattr(batch.request_counts, "total", None),
        created_at=batch.created_at,
    )


def status_of(ex: BaseException) -> int | None:
    """The HTTP status an SDK, litellm or httpx exception carries, if any."""
    for obj in (ex, getattr(ex, "response", None)):
        code = getattr(obj, "status_code", None)
        if isinstance(code, int):
            return code
    return None


def _retryable(ex: BaseException) -> bool:
    import httpx

    status = status_of(ex)
    if status is not None:
        return status in RETRYABLE_STATUS or status >= 500
    return isinstance(ex, (httpx.TransportError, ConnectionError, TimeoutError)) or (
        type(ex).__name__ in {"APIConnectionError", "APITimeoutError", "Timeout"}
    )


def _retry_after(ex: BaseException) -> float | None:
    headers = getattr(getattr(ex, "response", None), "headers", None) or {}
    try:
        return float(headers.get("retry-after"))
    except (TypeError, ValueError):
        return None


class BatchAdapter(ABC):
    """One provider's batch API (module docstring)."""

    provider: ClassVar[str]
    max_requests: ClassVar[int]
    max_bytes: ClassVar[int]
    key_field: ClassVar[str] = "custom_id"
    uploads: ClassVar[bool] = True  # the input goes up as a file before the batch is created
    key_env: ClassVar[tuple[str, ...]] = ()  # where the key comes from without --api-key

    @classmethod
    def require_key(cls, model: str, api_key: str | None) -> str:
        """`--api-key`, else the provider's key variable; a `ConfigError` when there is none."""
        import os

        from caml_evals.errors import ConfigError

        key = api_key or next((os.environ[v] for v in cls.key_env if os.environ.get(v)), None)
        if not key:
            raise ConfigError(
                f"--mode batch with {model}: no API key (--api-key or {' / '.join(cls.key_env)})"
            )
        return key

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        retry: RetryPolicy = CONTROL_RETRY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.retry = retry
        self._sleep = sleep
        self._rng = random.Random()

    @property
    def model_name(self) -> str:
        """The model as the provider names it (without litellm's provider prefix)."""
        return self.model.split("/", 1)[1] if "/" in self.model else self.model

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """`fn()` with retries of transient failures; other failures as the module docstring says."""
        from caml_evals.errors import ConfigError

        for attempt in range(self.retry.max_attempts):
            try:
                return fn()
            except (ConfigError, GenerationError):
                raise
            except Exception as ex:  # SDKs, litellm and httpx raise many types
                status = status_of(ex)
                message = f"{self.provider} batch API, {what}: {type(ex).__name__}: {ex}"
                if status in (401, 403):
                    raise ConfigError(
                        f"{message} (check --api-key or the provider's key variable)"
                    ) from ex
                last = attempt + 1 >= self.retry.max_attempts
                if not _retryable(ex) or last:
                    raise GenerationError(message, attempt + 1, _retryable(ex)) from ex
                self._sleep(self.retry.delay(attempt, self._rng, _retry_after(ex)))
        raise AssertionError("unreachable")

    def download_lines(self, what: str, write: Callable[[IO[bytes]], None]) -> Iterator[Any]:
        """The JSON lines of a results file, spooled to a temporary file by `write(fh)` (retried
        whole), so a results file of hundreds of MB is never all in memory."""
        with tempfile.TemporaryFile() as fh:

            def attempt() -> None:
                fh.seek(0)
                fh.truncate()
                write(fh)

            self.call(what, attempt)
            fh.seek(0)
            for raw in fh:
                if raw.strip():
                    yield json.loads(raw)

    # ------------------------------------------------------------------------ what a provider does

    @abstractmethod
    def line(self, key: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        """One request in the provider's input format, with `key` in `key_field`."""

    def upload(self, name: str, data: bytes) -> str:
        """Upload an input file; its id. Only for providers with `uploads`."""
        raise NotImplementedError

    @abstractmethod
    def create(self, record: BatchRecord, data: bytes) -> Remote:
        """Create the batch of `record` (its uploaded `file_id`, or `data` inline)."""

    @abstractmethod
    def find(self, record: BatchRecord, claimed: set[str]) -> Remote | None:
        """The batch a killed process created for `record` but never recorded, if the provider has
        it (batch ids in `claimed` belong to other records)."""

    @abstractmethod
    def retrieve(self, batch_id: str) -> Remote:
        """The batch's state now."""

    @abstractmethod
    def results(self, remote: Remote) -> Iterator[ItemResult]:
        """The per-request results of an ended batch (requests with none are simply absent)."""

    @abstractmethod
    def cancel(self, batch_id: str) -> Remote:
        """Ask the provider to stop the batch (what it already ran keeps its results)."""
