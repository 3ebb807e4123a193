"""`--concurrency auto`: additive-increase / multiplicative-decrease (AIMD) of requests in flight.

A fixed concurrency is either too low (the provider would take more) or too high (429s, and
retries that make it worse). The controller behaves like TCP congestion control:

- slow start: +1 per success until the first sign of a limit, so it finds the range in a few
  round trips;
- congestion avoidance: +1/limit per success (about +1 per round trip of a full window), and only
  while the window is in use (no growth while the client itself is the bottleneck);
- on a 429 (or 503/529 "overloaded"), or a rate-limit header saying nothing is left (OpenAI's
  `x-ratelimit-remaining-requests`/`-tokens`, Anthropic's `anthropic-ratelimit-*-remaining`):
  limit x `backoff` (0.7, as TCP CUBIC: the sawtooth averages ~85% of the limit), at most once per window: replies to requests sent before the last
  decrease do not cut again (a burst of 429s is one congestion event, not twenty);
- a header saying little is left (below the requests in flight) holds the limit where it is.

The runner calls `acquire()` before a request attempt, `on_response(status, headers)` with what
came back (status None for a timeout or dropped connection: no signal), and `release()` after.
`trace` records every change of the limit (seconds since start, limit, why) for the manifest.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

CONGESTION_STATUS = {429, 503, 529}
_REMAINING = (
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-output-tokens-remaining",
)


class TracePoint(BaseModel):
    t: float
    limit: int
    event: str


class Ticket:
    """One acquired slot; remembers the congestion epoch it was sent in."""

    __slots__ = ("epoch",)

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch


def _remaining(headers: Mapping[str, Any] | None) -> float | None:
    if not headers:
        return None
    lowered = {str(k).lower(): v for k, v in headers.items()}
    values = []
    for name in _REMAINING:
        if name in lowered:
            try:
                values.append(float(lowered[name]))
            except (TypeError, ValueError):
                continue
    return min(values) if values else None


class AdaptiveConcurrency:
    """An asyncio limiter whose limit follows AIMD (module docstring)."""

    def __init__(
        self,
        *,
        initial: int = 4,
        minimum: int = 1,
        maximum: int = 1024,
        backoff: float = 0.7,
        max_trace: int = 10_000,
        clock: Any = time.monotonic,
    ) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError("need 1 <= minimum <= initial <= maximum")
        if not 0.0 < backoff < 1.0:
            raise ValueError("backoff must be in (0, 1)")
        self.minimum, self.maximum, self.backoff = minimum, maximum, backoff
        self._limit = float(initial)
        self.in_flight = 0
        self.slow_start = True
        self.epoch = 0
        self.decreases = 0
        self.congestion_replies = 0
        self._clock = clock
        self._t0 = clock()
        self._cond: asyncio.Condition | None = None
        self.max_trace = max_trace
        self.trace: list[TracePoint] = []
        self._record("start")

    @property
    def limit(self) -> int:
        return max(self.minimum, min(self.maximum, math.floor(self._limit)))

    def _record(self, event: str) -> None:
        point = TracePoint(t=round(self._clock() - self._t0, 3), limit=self.limit, event=event)
        if self.trace and self.trace[-1].limit == point.limit and event == "increase":
            return
        if len(self.trace) >= self.max_trace:  # keep the shape: drop every other point
            self.trace = self.trace[::2]
        self.trace.append(point)

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def acquire(self) -> Ticket:
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
            return Ticket(self.epoch)

    async def release(self) -> None:
        cond = self._condition()
        async with cond:
            self.in_flight -= 1
            cond.notify_all()

    def on_response(
        self,
        status: int | None,
        headers: Mapping[str, Any] | None = None,
        ticket: Ticket | None = None,
    ) -> None:
        """Adjust the limit from one reply (see the module docstring)."""
        before = self.limit
        remaining = _remaining(headers)
        congested = status in CONGESTION_STATUS or (remaining is not None and remaining <= 0)
        if congested:
            if status in CONGESTION_STATUS:
                self.congestion_replies += 1
            if ticket is None or ticket.epoch == self.epoch:  # once per window
                self._limit = max(float(self.minimum), self._limit * self.backoff)
                self.slow_start = False
                self.epoch += 1
                self.decreases += 1
                why = status if status in CONGESTION_STATUS else "remaining 0"
                self._record(f"decrease ({why})")
        elif status is not None and 200 <= status < 300:
            if remaining is not None and remaining < self.in_flight:
                return  # the provider says we are at its edge: hold
            if self.in_flight + 1 < self.limit and not self.slow_start:
                return  # the window is not in use: growing it would mean nothing
            step = 1.0 if self.slow_start else 1.0 / self.limit
            self._limit = min(float(self.maximum), self._limit + step)
            if self.limit != before:
                self._record("increase")
        # no wake-up needed: on_response comes before that request's release(), which notifies

    def summary(self) -> dict[str, Any]:
        limits = [p.limit for p in self.trace]
        return {
            "final_limit": self.limit,
            "max_limit": max(limits),
            "decreases": self.decreases,
            "congestion_replies": self.congestion_replies,
            "trace": [p.model_dump() for p in self.trace],
        }
