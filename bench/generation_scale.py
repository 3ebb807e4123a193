"""Generation at the million-document scale: batch vs online price, and dedup speed and memory.

1. Price of the animal-welfare spec at 1M documents, online vs `--mode batch`, for a few models of
   litellm's bundled price map: prompt tokens measured on a sample of rendered prompts (the grid
   holds 112,000 cells, so 1M documents come from several seeds/specs; the per-request cost is the
   sample's mean), completion tokens from the spec's length target. Ratio batch / online.
2. Dedup of 100k short generated documents: ours (`StreamingDeduper`: on-disk index, batched numpy
   signatures) vs the baseline (datasketch `MinHash` per text + in-memory `MinHashLSH`, the previous
   implementation): documents/s and peak memory (tracemalloc: Python allocations; and the RSS
   growth, which includes SQLite's page cache), each as ours / baseline. Each side runs in a fresh
   process so one's memory does not count against the other.

    python bench/generation_scale.py                 # both parts
    python bench/generation_scale.py --docs 20000    # smaller dedup run

Measured on 2 CPU cores shared with ~9 other jobs (load ~8.7), 2026-12-02: see the report quoted in
docs/generation.md ("Generation at scale").
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = (
    "gemini/gemini-2.5-flash",
    "openai/gpt-4o-mini",
    "openai/gpt-4.1-mini",
    "anthropic/claude-haiku-4-5",
)


def price_at_scale(documents: int, sample: int) -> list[dict]:
    from caml_train.generate.forecast import forecast
    from caml_train.generate.grid import sample_grid
    from caml_train.generate.prompts import document_messages
    from caml_train.generate.spec import load_spec

    spec = load_spec("animal_welfare")
    messages = [document_messages(spec, c) for c in sample_grid(spec.grid, sample, seed=0)]
    completion = min(spec.target_tokens, spec.generation.max_tokens)
    rows = []
    for model in MODELS:
        f = forecast(
            messages,
            model=model,
            planned=sample,
            cached=0,
            completion_tokens_per_request=completion,
            concurrency=None,
        )
        scale = documents / sample
        online = f.cost["online"].usd
        batch = f.cost["batch"].usd
        rows.append(
            {
                "model": model,
                "prompt_tokens_per_doc": round(f.prompt_tokens_per_request, 1),
                "completion_tokens_per_doc": completion,
                "online_usd": None if online is None else round(online * scale, 2),
                "batch_usd": None if batch is None else round(batch * scale, 2),
                "ratio_batch_online": None
                if online is None or batch is None
                else round(batch / online, 3),
            }
        )
    return rows


def _docs(n: int, seed: int = 1) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20000)]
    docs = [(f"d{i}", " ".join(rng.choices(vocab, k=rng.randint(20, 60)))) for i in range(n)]
    for k in range(0, n, 1000):  # 0.1% planted near-copies
        base = docs[rng.randrange(n)][1].split()
        docs[k] = (f"d{k}", " ".join(base[:-1] + ["changed"]))
    return docs


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def dedup_worker(side: str, n: int, trace: bool) -> None:
    import tracemalloc

    docs = _docs(n)
    from datasketch import MinHashLSH

    from caml_train.generate.dedup import optimal_bands

    optimal_bands(0.8, 128)
    rss0 = _rss_mib()
    if trace:
        tracemalloc.start()
    t = time.perf_counter()
    if side == "ours":
        from caml_train.generate.dedup import StreamingDeduper

        with StreamingDeduper() as d:
            dropped = sum(1 for _, x in d.filter(docs) if x is not None)
    else:
        from datasketch import MinHash, MinHashLSH

        from caml_train.generate.dedup import _WORD

        def mh(text: str) -> MinHash:
            words = _WORD.findall(text.casefold())
            m = MinHash(num_perm=128, seed=1)
            m.update_batch({" ".join(words[i : i + 5]).encode() for i in range(len(words) - 4)})
            return m

        lsh, kept, dropped = MinHashLSH(threshold=0.8, num_perm=128), {}, 0
        for i, text in docs:
            m = mh(text)
            if any(m.jaccard(kept[c]) >= 0.8 for c in lsh.query(m)):
                dropped += 1
            else:
                lsh.insert(i, m)
                kept[i] = m
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    print(
        json.dumps(
            {
                "side": side,
                "docs": n,
                "seconds": seconds,
                "docs_per_s": n / seconds,
                "dropped": dropped,
                "peak_traced_mib": peak,
                "rss_growth_mib": _rss_mib() - rss0,
            }
        )
    )


def run_side(side: str, n: int, trace: bool) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", side, "--docs", str(n)]
        + (["--trace"] if trace else []),
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--documents", type=int, default=1_000_000, help="corpus size for the price")
    p.add_argument("--sample", type=int, default=2000, help="rendered prompts measured")
    p.add_argument("--docs", type=int, default=100_000, help="documents for the dedup bench")
    p.add_argument("--worker", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    p.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--skip-dedup", action="store_true")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    if args.worker:
        dedup_worker(args.worker, args.docs, args.trace)
        return
    results: dict = {"price": price_at_scale(args.documents, args.sample)}
    print(f"animal_welfare at {args.documents:,} documents (prompts measured on {args.sample}):")
    print(f"{'model':32} {'online $':>12} {'batch $':>12} {'batch/online':>13}")
    for r in results["price"]:
        fmt = lambda v: "unknown" if v is None else f"{v:,.0f}"
        print(
            f"{r['model']:32} {fmt(r['online_usd']):>12} {fmt(r['batch_usd']):>12}"
            f" {r['ratio_batch_online'] if r['ratio_batch_online'] is not None else 'unknown':>13}"
        )
    if not args.skip_dedup:
        rows = {}
        for side in ("ours", "baseline"):
            speed = run_side(side, args.docs, trace=False)  # speed without tracing overhead
            mem = run_side(side, args.docs, trace=True)
            rows[side] = {**speed, "peak_traced_mib": mem["peak_traced_mib"]}
            print(f"  {side}: {json.dumps(rows[side])}", flush=True)
        results["dedup"] = rows
        o, b = rows["ours"], rows["baseline"]
        print(f"\ndedup of {args.docs:,} short documents:")
        print(
            f"{'':10} {'docs/s':>10} {'peak traced MiB':>16} {'RSS growth MiB':>15} {'dropped':>8}"
        )
        for side, r in rows.items():
            print(
                f"{side:10} {r['docs_per_s']:>10.0f} {r['peak_traced_mib']:>16.1f}"
                f" {r['rss_growth_mib']:>15.1f} {r['dropped']:>8}"
            )
        print(
            f"{'ratio':10} {o['docs_per_s'] / b['docs_per_s']:>10.2f}"
            f" {o['peak_traced_mib'] / b['peak_traced_mib']:>16.3f}"
            f" {o['rss_growth_mib'] / max(b['rss_growth_mib'], 1e-9):>15.3f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
