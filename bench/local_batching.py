"""Local model batching: generated tokens/s of the `caml/` provider at 1, 8 and 32 requests at once.

Inspect runs up to `--max-connections` samples' `generate` calls at once; the `caml/` provider
(like Inspect's `hf`) collects the calls that are waiting into one `model.generate` batch, up to
`max_connections` (default: 8 on CPU, 32 on a GPU; `models/local.py`). This bench sends B
concurrent requests (distinct prompts, greedy, a fixed `--max-tokens`) to the embedded SmolLM2
model, B = 1, 8, 32, with `max_connections=B`, and prints generated tokens/s (each sequence's own
tokens, `usage.output_tokens`) and the speed-up over B = 1. With `--baseline` (default on) the
same requests go through Inspect's `hf/` provider on the same checkpoint, side by side with the
ratio of wall times (`hf` starts a batch only after 2 s without a new request, and its usage
counts padded lengths, so its tokens/s is computed from our tokenizer on its completions).

    python bench/local_batching.py
    python bench/local_batching.py --batches 1 8 32 64 --max-tokens 64 --no-baseline

Measured on 2 CPU cores shared with other work (load average 7-10, `OMP_NUM_THREADS=1`,
2026-12-02), `python bench/local_batching.py --max-tokens 32`:

    embedded SmolLM2-135M on cpu, 32 new tokens per request, greedy
     batch   caml/ tok/s  x batch 1     hf/ tok/s  x batch 1  wall hf/ / caml/
         1           8.8      1.00x           7.4      1.00x             1.19x
         8           7.1      0.81x           3.5      0.47x             2.04x
        32           3.9      0.44x           3.2      0.43x             1.22x

On that starved machine a batch gains nothing for either provider (each step's compute grows
with the batch and there is no idle core to absorb it), so these are not the numbers of a quiet
CPU or a GPU, where one forward pass over a batch costs little more than over one sequence; at
equal batches the `caml/` provider finishes 1.2-2.0x sooner than `hf/` (no 2 s wait before a
batch starts, no 1 s polling of the result).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from inspect_ai.model import GenerateConfig, Model, get_model

TOPICS = [
    "cows",
    "bees",
    "octopuses",
    "chickens",
    "salmon",
    "pigs",
    "crows",
    "horses",
    "shrimp",
    "goats",
    "rats",
    "owls",
    "frogs",
    "sheep",
    "ants",
    "dolphins",
]


def prompts(n: int) -> list[str]:
    return [f"Write two sentences about {TOPICS[i % len(TOPICS)]} (note {i})." for i in range(n)]


async def wave(model: Model, batch: int, max_tokens: int) -> tuple[float, list]:
    config = GenerateConfig(max_tokens=max_tokens, max_connections=batch)
    start = time.perf_counter()
    outputs = await asyncio.gather(*(model.generate(p, config=config) for p in prompts(batch)))
    return time.perf_counter() - start, outputs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    from caml_evals.models.embedded import ensure_embedded_checkpoint

    path = ensure_embedded_checkpoint()
    ours = get_model("caml/smollm2", memoize=False)
    tokenizer = ours.api.tokenizer
    models = {"caml/": ours}
    if args.baseline:
        models["hf/"] = get_model(
            "hf/smollm2",
            model_path=str(path),
            device=str(ours.api.model.device),
            do_sample=False,
            memoize=False,
        )
    asyncio.run(wave(ours, 1, 2))  # warm up (first call allocates)

    results: dict[str, dict[int, dict]] = {}
    for batch in args.batches:
        for name, model in models.items():
            seconds, outputs = asyncio.run(wave(model, batch, args.max_tokens))
            if name == "caml/":
                tokens = sum(o.usage.output_tokens for o in outputs)
            else:
                tokens = sum(
                    min(
                        args.max_tokens,
                        len(tokenizer(o.completion, add_special_tokens=False)["input_ids"]) + 1,
                    )
                    for o in outputs
                )
            results.setdefault(name, {})[batch] = {
                "seconds": seconds,
                "tokens": tokens,
                "tokens_per_s": tokens / seconds,
            }
    device = str(ours.api.model.device)
    print(f"embedded SmolLM2-135M on {device}, {args.max_tokens} new tokens per request, greedy")
    header = f"{'batch':>6}" + "".join(f"{n + ' tok/s':>14}{'x batch 1':>11}" for n in models)
    if args.baseline:
        header += f"{'wall hf/ / caml/':>18}"
    print(header)
    for batch in args.batches:
        line = f"{batch:>6}"
        for name in models:
            r, first = results[name][batch], results[name][args.batches[0]]
            line += f"{r['tokens_per_s']:>14.1f}{r['tokens_per_s'] / first['tokens_per_s']:>10.2f}x"
        if args.baseline:
            line += (
                f"{results['hf/'][batch]['seconds'] / results['caml/'][batch]['seconds']:>17.2f}x"
            )
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
