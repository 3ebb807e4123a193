"""Response cache, request keys, retry classification/backoff and the cache-first runner."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from caml_train.generate.cache import CacheEntry, ResponseCache, Usage, request_key
from caml_train.generate.client import (
    GenerationError,
    LLMClient,
    RetryPolicy,
    import_litellm,
    is_retryable,
    retry_after_seconds,
)
from caml_train.generate.grid import TemplateParams
from caml_train.generate.runner import Job, execute

MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "write"}]
PARAMS = {"temperature": 1.0, "max_tokens": 100}
CELL = TemplateParams(institution="i", domain="d", doc_type="t", reasoning="r")


def _entry(key: str, text: str = "hello") -> CacheEntry:
    return CacheEntry(
        key=key,
        model="openai/m",
        messages=MESSAGES,
        params=PARAMS,
        text=text,
        usage=Usage(prompt_tokens=3, completion_tokens=5),
    )


def test_request_key_covers_model_messages_and_params() -> None:
    key = request_key("openai/m", MESSAGES, PARAMS)
    assert len(key) == 64
    assert key == request_key(
        "openai/m", MESSAGES, {"max_tokens": 100, "temperature": 1.0}
    )  # order-free
    assert key != request_key("openai/other", MESSAGES, PARAMS)
    assert key != request_key(
        "openai/m", [*MESSAGES[:1], {"role": "user", "content": "write!"}], PARAMS
    )
    assert key != request_key("openai/m", MESSAGES, {**PARAMS, "temperature": 0.7})


def test_cache_roundtrip_and_atomic_files(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    key = request_key("openai/m", MESSAGES, PARAMS)
    assert cache.get(key) is None and key not in cache
    path = cache.put(_entry(key))
    assert path == tmp_path / "c" / key[:2] / f"{key}.json"
    assert cache.get(key) == _entry(key).model_copy(
        update={"created_at": cache.get(key).created_at}
    )
    # a temp file left by a killed writer is not an entry
    (path.parent / f".{key[:8]}-zzz.tmp").write_text('{"half": ')
    assert cache.keys() == {key}


def test_corrupt_entry_is_kept_aside_and_refetched(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    key = "ab" + "0" * 62
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_text("{not json")
    assert cache.get(key) is None
    assert cache.corrupt == [key]
    assert cache.path(key).with_suffix(".corrupt").read_text() == "{not json"  # nothing deleted


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"key": "caf\xe9"}', id="latin-1-bytes"),
        pytest.param(b"\xff\xfe{\x00", id="utf-16"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_undecodable_entry_is_set_aside_listed_and_regenerated(
    tmp_path: Path, raw: bytes
) -> None:
    """One non-UTF-8 file used to abort every rerun (issue 14, defect 4): it is now a corrupt
    entry like any other, moved aside (kept), listed, and its request is sent again."""
    cache = ResponseCache(tmp_path)
    messages = [{"role": "user", "content": "doc"}]
    job = Job(id="j", params=CELL, messages=messages, key=request_key("openai/m", messages, PARAMS))
    cache.path(job.key).parent.mkdir(parents=True)
    cache.path(job.key).write_bytes(raw)
    client = _ScriptedClient(["regenerated"])
    result = await execute([job], client=client, cache=cache, request_params=PARAMS, concurrency=1)
    assert client.calls == 1 and cache.corrupt == [job.key]
    assert cache.get(job.key).text == "regenerated"
    assert cache.path(job.key).with_suffix(".corrupt").read_bytes() == raw
    assert result.usage_this_run.requests == 1
    # a second bad copy of the same entry does not overwrite the first one set aside
    cache.path(job.key).write_bytes(b"\x80")
    assert cache.get(job.key) is None
    assert cache.path(job.key).with_suffix(".corrupt.1").read_bytes() == b"\x80"


def _litellm_error(cls_name: str, code: int, retry_after: str | None = None) -> Exception:
    litellm = import_litellm()
    headers = {"retry-after": retry_after} if retry_after else {}
    response = httpx.Response(
        code, request=httpx.Request("POST", "http://127.0.0.1/v1"), headers=headers
    )
    cls = getattr(litellm, cls_name)
    if cls_name in {"BadRequestError", "Timeout"}:
        return cls(message="x", model="m", llm_provider="openai", response=response)
    return cls(message="x", llm_provider="openai", model="m", response=response)


@pytest.mark.parametrize(
    ("cls_name", "code", "retryable"),
    [
        ("RateLimitError", 429, True),
        ("InternalServerError", 500, True),
        ("ServiceUnavailableError", 503, True),
        ("Timeout", 408, True),
        ("BadRequestError", 400, False),
        ("AuthenticationError", 401, False),
        ("NotFoundError", 404, False),
    ],
)
def test_retry_classification(cls_name: str, code: int, retryable: bool) -> None:
    assert is_retryable(_litellm_error(cls_name, code)) is retryable


def test_retry_classification_by_status_and_retry_after() -> None:
    assert is_retryable(type("E", (Exception,), {"status_code": 502})())
    assert not is_retryable(type("E", (Exception,), {"status_code": 422})())
    assert is_retryable(asyncio.TimeoutError())
    assert retry_after_seconds(_litellm_error("RateLimitError", 429, retry_after="7")) == 7.0
    assert retry_after_seconds(_litellm_error("RateLimitError", 429)) is None
    assert retry_after_seconds(ValueError()) is None


def test_backoff_grows_with_equal_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0)
    rng = random.Random(0)
    for attempt, cap in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 10.0), (9, 10.0)]:
        for _ in range(50):
            d = policy.delay(attempt, rng)
            assert cap / 2 <= d <= cap
    assert policy.delay(0, rng, retry_after=5.0) == 5.0
    assert policy.delay(0, rng, retry_after=500.0) == 10.0  # capped


class _ScriptedClient(LLMClient):
    """LLMClient whose transport is a script of exceptions/texts (unit level; HTTP is tested elsewhere)."""

    def __init__(self, script: list, **kw) -> None:
        self.sleeps: list[float] = []

        async def sleep(d: float) -> None:
            self.sleeps.append(d)

        super().__init__("openai/m", sleep=sleep, rng=random.Random(0), **kw)
        self.script = list(script)
        self.calls = 0

    async def _call(self, messages, params):
        self.calls += 1
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        if item is None:  # a 200 reply without choices
            return None
        return SimpleNamespace(
            choices=[SimpleNamespace(message=SimpleNamespace(content=item), finish_reason="stop")],
            usage=SimpleNamespace(prompt_tokens=2, completion_tokens=3),
            model="m",
        )


async def test_client_retries_transient_errors_then_succeeds() -> None:
    client = _ScriptedClient(
        [
            _litellm_error("RateLimitError", 429, retry_after="7"),
            _litellm_error("InternalServerError", 500),
            "ok",
        ],
        retry=RetryPolicy(base_delay=0.5, max_delay=60),
    )
    result = await client.complete(MESSAGES, PARAMS)
    assert (result.text, result.attempts, client.calls) == ("ok", 3, 3)
    assert client.retry_reasons == {"429": 1, "500": 1}
    assert client.sleeps[0] == 7.0  # Retry-After: 7 beats the 0.25-0.5 s backoff
    assert 0.5 <= client.sleeps[1] <= 1.0
    assert (
        result.cost_known is False and result.cost_usd == 0.0
    )  # unknown model: flagged, not guessed


async def test_client_gives_up_at_once_on_client_errors_and_after_max_attempts() -> None:
    bad = _ScriptedClient([_litellm_error("BadRequestError", 400), "never"])
    with pytest.raises(GenerationError, match="not retryable after 1 attempt") as info:
        await bad.complete(MESSAGES, PARAMS)
    assert info.value.attempts == 1 and bad.calls == 1
    flaky = _ScriptedClient(
        [_litellm_error("InternalServerError", 500)] * 3, retry=RetryPolicy(max_attempts=3)
    )
    with pytest.raises(GenerationError, match="retries exhausted after 3") as info:
        await flaky.complete(MESSAGES, PARAMS)
    assert info.value.retryable and flaky.calls == 3
    empty = _ScriptedClient([None, "fine"], retry=RetryPolicy(max_attempts=2))
    # a 200 without choices is retried, not cached as an empty document
    assert (await empty.complete(MESSAGES, PARAMS)).text == "fine" and empty.calls == 2


async def test_runner_cache_first_and_cache_only(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    jobs = []
    for i in range(4):
        messages = [{"role": "user", "content": f"doc {i}"}]
        jobs.append(
            Job(
                id=f"j{i}",
                params=CELL,
                messages=messages,
                key=request_key("openai/m", messages, PARAMS),
            )
        )
    jobs.append(Job(id="j0-again", params=CELL, messages=jobs[0].messages, key=jobs[0].key))
    cache.put(_entry(jobs[0].key, "cached text"))
    client = _ScriptedClient(["new 1", "new 2", "new 3"])
    result = await execute(jobs, client=client, cache=cache, request_params=PARAMS, concurrency=2)
    assert client.calls == 3 and result.unique_requests == 4  # a repeated key is sent once
    assert result.cached_keys == {jobs[0].key} and result.usage_from_cache.requests == 1
    assert result.usage_this_run.requests == 3 and result.usage_this_run.completion_tokens == 9
    assert cache.keys() == {j.key for j in jobs}  # every response persisted
    # cache-only: nothing is called, what is missing is reported
    cache.path(jobs[3].key).unlink()
    offline = await execute(
        jobs, client=None, cache=cache, request_params=PARAMS, concurrency=1, cache_only=True
    )
    assert offline.missing_from_cache == [jobs[3].key] and len(offline.entries) == 3
    with pytest.raises(ValueError, match="client is required"):
        await execute(jobs, client=None, cache=cache, request_params=PARAMS, concurrency=1)
