"""`--concurrency auto`: the AIMD controller, unit-level and against a rate-limited loopback server."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from caml_train.generate.concurrency import AdaptiveConcurrency
from caml_train.generate.testing import Reply, ScriptedOpenAIServer, TokenBucket


def test_slow_start_then_one_halving_per_congestion_window() -> None:
    c = AdaptiveConcurrency(initial=4, backoff=0.5)

    async def run() -> None:
        tickets = [await c.acquire() for _ in range(4)]
        for t in tickets:
            c.on_response(200, {}, t)
            await c.release()
        assert c.limit == 8 and c.slow_start  # +1 per success while in slow start
        burst = [await c.acquire() for _ in range(8)]
        for t in burst:  # eight 429s from one window: one decrease
            c.on_response(429, {"retry-after": "1"}, t)
            await c.release()
        assert c.limit == 4 and c.decreases == 1 and c.congestion_replies == 8
        assert not c.slow_start
        window = [await c.acquire() for _ in range(4)]
        for t in window:  # congestion avoidance: about +1 per full window
            c.on_response(200, {}, t)
        for _ in window:
            await c.release()
        assert c.limit == 5
        t = await c.acquire()
        c.on_response(200, {"x-ratelimit-remaining-requests": "0"}, t)  # a header says stop
        await c.release()
        assert c.limit == 2 and c.decreases == 2  # 5 x 0.5

    asyncio.run(run())
    events = [p.event for p in c.trace]
    assert (
        events[0] == "start" and "decrease (429)" in events and "decrease (remaining 0)" in events
    )


def test_limit_is_enforced_and_bounded() -> None:
    c = AdaptiveConcurrency(initial=2, maximum=3)
    peak = 0

    async def one() -> None:
        nonlocal peak
        t = await c.acquire()
        peak = max(peak, c.in_flight)
        await asyncio.sleep(0.001)
        c.on_response(200, {}, t)
        await c.release()

    async def run() -> None:
        await asyncio.gather(*(one() for _ in range(50)))

    asyncio.run(run())
    assert peak <= 3 and c.limit == 3
    with pytest.raises(ValueError):
        AdaptiveConcurrency(initial=0)


def test_converges_near_a_fixed_rate_limit() -> None:
    """Server: 80 requests/s, 0.1 s per request, so the best concurrency is 8. The controller
    starts at 1, finds it, and finishes 240 requests with few 429s (bounded count and time)."""
    rate, latency, n = 80.0, 0.1, 240
    bucket = TokenBucket(rate, capacity=rate * latency)  # one round trip of burst

    def responder(body: dict, hit: int):
        if not bucket.take():
            return Reply(status=429, headers={"retry-after": "0"}, error_message="rate limited")
        return Reply(content="ok", delay=latency)

    c = AdaptiveConcurrency(initial=1, maximum=64)
    done = 0
    limits: list[int] = []
    finished: list[float] = []

    async def drive(api_base: str) -> float:
        nonlocal done
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:

            async def worker() -> None:
                nonlocal done
                while done < n:
                    try:
                        i = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        await asyncio.sleep(0.01)
                        continue
                    ticket = await c.acquire()
                    try:
                        async with session.post(
                            f"{api_base}/chat/completions",
                            json={
                                "model": "scripted",
                                "messages": [{"role": "user", "content": str(i)}],
                            },
                        ) as r:
                            await r.read()
                            c.on_response(r.status, r.headers, ticket)
                            limits.append(c.limit)
                            if r.status == 200:
                                done += 1
                                finished.append(time.monotonic())
                            else:
                                queue.put_nowait(i)
                    finally:
                        await c.release()

            await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(64))), timeout=60)
        return time.monotonic() - started

    with ScriptedOpenAIServer(responder) as server:
        seconds = asyncio.run(drive(server.api_base))
        hits = server.hit_count()
    assert done == n
    best = rate * latency  # 8 in flight
    half = finished[n // 2 :]  # after the climb: the steady state
    throughput = (len(half) - 1) / (half[-1] - half[0])
    late = limits[len(limits) // 2 :]
    mean_late = sum(late) / len(late)
    print(f"{throughput:.0f}/s, mean limit {mean_late:.1f}, {hits - n} 429s, {seconds:.1f} s")
    assert throughput > 0.6 * rate, f"{throughput:.0f}/s against a limit of {rate:.0f}/s"
    assert (hits - n) / hits < 0.35, f"{hits - n} 429s of {hits} requests: a retry storm"
    assert 0.5 * best <= mean_late <= 3 * best, f"mean limit {mean_late:.1f} vs best {best:.0f}"
    assert c.decreases >= 1  # it met the limit and backed off
