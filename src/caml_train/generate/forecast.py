"""What a generation run will cost and how long it will take, before a single paid request.

`caml-train generate ... --dry-run` plans every request (the same jobs and cache keys as the real
run), and `forecast()` turns that plan into a bill:

- requests: planned, already cached (free), to send;
- prompt tokens: measured on the rendered prompts of the requests to send, at
  `CHARS_PER_TOKEN` characters per token (the usual English ratio of BPE tokenizers; no tokenizer
  is downloaded) plus a small per-message overhead of the chat format;
- completion tokens: the spec's length target (`target_tokens`), capped at `max_tokens`;
- price online and in batch mode from litellm's bundled price map, read as data (the
  `*_batches` prices where the map lists them); a model or mode the map does not price is reported
  as unknown (None), never as $0;
- wall time online: the slowest of three limits: concurrency (requests in flight x per-request
  latency, `latency_s` or first-token latency + completion tokens / decode speed), `--rpm` and
  `--tpm` (the provider's rate limits). Batch mode: the provider's completion window (24 h).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from caml_train.generate.client import _price_map

CHARS_PER_TOKEN = 4.0
MESSAGE_OVERHEAD_TOKENS = 4  # role markers and separators of the chat format, per message
REPLY_OVERHEAD_TOKENS = 3
BATCH_WINDOW_HOURS = 24.0

Mode = Literal["online", "batch"]


class Price(BaseModel):
    """USD per token for one model and mode, and the price-map entry it came from."""

    input_per_token: float
    output_per_token: float
    entry: str


def _names(model: str) -> list[str]:
    return list(dict.fromkeys([model, model.split("/", 1)[-1]]))


def lookup_price(model: str, mode: Mode = "online") -> Price | None:
    """The bundled price of `model` (as given, then without its provider prefix); None when the map
    does not list it, or lists no batch price for it in batch mode."""
    suffix = "" if mode == "online" else "_batches"
    prices = _price_map()
    for name in _names(model):
        entry = prices.get(name)
        if not isinstance(entry, dict):
            continue
        inp, out = (
            entry.get(f"input_cost_per_token{suffix}"),
            entry.get(f"output_cost_per_token{suffix}"),
        )
        if inp is None or out is None:
            continue
        return Price(input_per_token=float(inp), output_per_token=float(out), entry=name)
    return None


def estimate_prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Tokens of one rendered chat prompt, from its characters (module docstring)."""
    chars = sum(len(str(m.get("content", ""))) for m in messages)
    return (
        math.ceil(chars / CHARS_PER_TOKEN)
        + MESSAGE_OVERHEAD_TOKENS * len(messages)
        + REPLY_OVERHEAD_TOKENS
    )


class ModeCost(BaseModel):
    mode: Mode
    usd: float | None = Field(description="None: the price map has no price for this model/mode")
    price: Price | None
    note: str


class WallTime(BaseModel):
    seconds: float | None
    bound_by: str = Field(description="which limit sets the time: concurrency, rpm, tpm or none")
    basis: str


class Forecast(BaseModel):
    model: str
    requests_planned: int
    requests_cached: int
    requests_to_send: int
    prompt_tokens: int = Field(description="of the requests to send")
    prompt_tokens_per_request: float
    completion_tokens: int
    completion_tokens_per_request: int
    token_method: str
    cost: dict[str, ModeCost]
    wall_time_online: WallTime
    wall_time_batch: str

    def lines(self) -> list[str]:
        """The forecast as plain lines (the CLI prints them; rich or piped)."""
        out = [
            (
                f"requests: {self.requests_planned} planned, {self.requests_cached} cached,"
                f" {self.requests_to_send} to send to {self.model}"
            ),
            (
                f"prompt tokens: {self.prompt_tokens:,}"
                f" ({self.prompt_tokens_per_request:,.0f}/request, {self.token_method})"
            ),
            (
                f"completion tokens: {self.completion_tokens:,}"
                f" ({self.completion_tokens_per_request:,}/request, the spec's length target)"
            ),
        ]
        for cost in self.cost.values():
            amount = f"${cost.usd:,.2f}" if cost.usd is not None else "unknown"
            out.append(f"price {cost.mode}: {amount} ({cost.note})")
        wall = self.wall_time_online
        when = _duration(wall.seconds) if wall.seconds is not None else "unknown"
        out.append(f"wall time online: {when} (bound by {wall.bound_by}; {wall.basis})")
        out.append(f"wall time batch: {self.wall_time_batch}")
        return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _mode_cost(model: str, mode: Mode, prompt_tokens: int, completion_tokens: int) -> ModeCost:
    price = lookup_price(model, mode)
    if price is None:
        what = "no price" if mode == "online" else "no batch price"
        return ModeCost(
            mode=mode,
            usd=None,
            price=None,
            note=f"{what} for {model!r} in litellm's bundled price map: not estimated",
        )
    usd = prompt_tokens * price.input_per_token + completion_tokens * price.output_per_token
    note = (
        f"${price.input_per_token * 1e6:.3g}/M in, ${price.output_per_token * 1e6:.3g}/M out,"
        f" litellm entry {price.entry!r}"
    )
    return ModeCost(mode=mode, usd=usd, price=price, note=note)


def wall_time(
    requests: int,
    tokens_per_request: float,
    *,
    concurrency: int | None,
    latency_s: float,
    rpm: float | None = None,
    tpm: float | None = None,
) -> WallTime:
    """The slowest of the concurrency, requests-per-minute and tokens-per-minute limits.

    `concurrency=None` is `--concurrency auto`: the controller climbs to the rate limit, so only
    `rpm`/`tpm` bound the time (unknown without them)."""
    if requests == 0:
        return WallTime(seconds=0.0, bound_by="none", basis="nothing to send")
    limits: dict[str, float] = {}
    if concurrency is not None:
        limits["concurrency"] = requests * latency_s / concurrency
    if rpm:
        limits["rpm"] = requests / rpm * 60.0
    if tpm:
        limits["tpm"] = requests * tokens_per_request / tpm * 60.0
    basis = f"{latency_s:.1f} s/request"
    basis += f" at {concurrency} in flight" if concurrency is not None else ", concurrency auto"
    basis += f", rpm {rpm:g}" if rpm else ", no --rpm"
    basis += f", tpm {tpm:g}" if tpm else ", no --tpm"
    if not limits:
        return WallTime(
            seconds=None, bound_by="none", basis=basis + ": give --rpm/--tpm to bound auto"
        )
    bound = max(limits, key=limits.__getitem__)
    return WallTime(seconds=limits[bound], bound_by=bound, basis=basis)


def forecast(
    messages: Iterable[Sequence[dict[str, Any]]],
    *,
    model: str,
    planned: int,
    cached: int,
    completion_tokens_per_request: int,
    concurrency: int | None,
    rpm: float | None = None,
    tpm: float | None = None,
    latency_s: float | None = None,
    first_token_s: float = 0.5,
    decode_tokens_per_s: float = 60.0,
) -> Forecast:
    """Forecast for the requests to send (`messages`: the rendered prompts of the uncached jobs)."""
    prompt_tokens = 0
    to_send = 0
    for m in messages:
        prompt_tokens += estimate_prompt_tokens(m)
        to_send += 1
    completion = to_send * completion_tokens_per_request
    latency = (
        latency_s
        if latency_s is not None
        else first_token_s + completion_tokens_per_request / decode_tokens_per_s
    )
    per_request = prompt_tokens / to_send if to_send else 0.0
    basis = (
        f"latency given ({latency:.1f} s)"
        if latency_s is not None
        else f"{first_token_s:g} s to first token + {decode_tokens_per_s:g} tokens/s"
    )
    wall = wall_time(
        to_send,
        per_request + completion_tokens_per_request,
        concurrency=concurrency,
        latency_s=latency,
        rpm=rpm,
        tpm=tpm,
    )
    wall.basis = f"{basis}; {wall.basis}"
    return Forecast(
        model=model,
        requests_planned=planned,
        requests_cached=cached,
        requests_to_send=to_send,
        prompt_tokens=prompt_tokens,
        prompt_tokens_per_request=per_request,
        completion_tokens=completion,
        completion_tokens_per_request=completion_tokens_per_request,
        token_method=f"measured on the rendered prompts at {CHARS_PER_TOKEN:g} characters/token",
        cost={
            mode: _mode_cost(model, mode, prompt_tokens, completion) for mode in ("online", "batch")
        },
        wall_time_online=wall,
        wall_time_batch=(
            f"within the provider's {BATCH_WINDOW_HOURS:g} h completion window per batch"
            " (usually sooner); no rate limit applies to queued batch requests"
        ),
    )
