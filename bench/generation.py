"""Generation client speed: documents/s against the local test server, as a share of the limit.

A server that answers every request after a fixed latency L and admits at most R requests/s (a
token bucket with one round trip of burst, answering 429 beyond it) allows at most min(C / L, R)
documents per second at C requests in flight; what the client does per reply (HTTP, litellm,
parsing, caching, accounting), before its first request (imports, templates) and on a 429 (backoff,
retries) is what keeps it below that. This bench runs the real pipeline
(`caml_train.generate.pipeline.generate_documents`: plan, cache, client, filters, manifest) in a
fresh process against `generate/testing.py`'s scripted server on 127.0.0.1 (in this process, so
the client's CPU is its own), at concurrency 1, 8, 32 and `auto` (AIMD,
`caml_train.generate.concurrency`) with 8 x min(C, R x L) documents each (bounded: about 4 s each at
the limit), and prints

- documents/s and its ratio to min(C / L, R) (for auto: R), over the window from the server's
  first request to its last reply (the client's start-up is reported apart), and the 429s the
  server sent;
- for auto, the highest and final limit it reached beside the best concurrency R x L;
- start-up: from launching the process to the server seeing its first request,

for this checkout ("ours") and, with `--baseline REV` (default: the commit before the generation
speed work; it has no `auto`), the same pipeline from that git revision (`git archive` into a
temporary folder, put first on `PYTHONPATH`), side by side with the ratio ours / baseline.

    python bench/generation.py                      # ours vs the default baseline revision
    python bench/generation.py --baseline none      # ours only
    python bench/generation.py --latency 0.5 --rate 24 --concurrency 1 8 32 auto
    python bench/generation.py --rate 0 --concurrency 1 8 32   # no rate limit (the table below)

At the million-document scale (batch vs online price at 1M documents, dedup documents/s and peak
memory at 100k documents): `python bench/generation_scale.py`.

Measured on 2 CPU cores shared with other work (load average 3.5-5, 2026-12-02), latency 0.5 s,
rate limit 24 requests/s (best concurrency 12), `python bench/generation.py`:

    concurrency  limit/s                ours                   baseline f65dc22   ours / baseline
              1      2.0    1.9 (93.1%)    0 429s       1.8 (89.6%)    0 429s             1.04x
              8     16.0   14.7 (91.8%)    0 429s      13.6 (85.3%)    0 429s             1.08x
             32     24.0   15.3 (63.7%)   63 429s      13.8 (57.7%)   60 429s             1.11x
           auto     24.0   20.0 (83.4%)    4 429s                         -
    auto: limit reached 16, ended at 12 (best concurrency rate x latency = 12)

A fixed 32 in flight against a limit of 12 spends its time in 429s and backoff (63 of them for 96
documents); auto climbs from 1, meets the limit, backs off once or twice and ends at the best
concurrency, at 83% of the rate limit (the climb from 1 is inside the measured window).

Without a rate limit (`--rate 0 --concurrency 1 8 32`, load average ~9; baseline f65dc22:
litellm for every request, a template compiled per request, cache fsync on the event loop,
inspect_ai and scipy imported before the first call):

    concurrency  limit/s                        ours            baseline f65dc22  ours / baseline
              1      2.0             1.8 ( 90.7%)                 1.8 ( 89.1%)             1.02x
              8     16.0            13.6 ( 85.0%)                11.4 ( 71.5%)             1.19x
             32     64.0            54.5 ( 85.1%)                23.0 ( 36.0%)             2.36x
              start-up s            2.00 (best)               19.71 (best)

The scripted server alone, driven by a bare aiohttp loop, reached 93% / 91% / 88% on that
machine at the same time: most of the remaining gap is the server's own overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "f65dc22"  # before the generation client speed work
SPEC = "animal_welfare"


def _worker(api_base: str, n: int, concurrency: int | str, out: str, cache: str) -> None:
    """Run in the child process: one real generation run; prints its timing as JSON."""
    from caml_train.generate.pipeline import RunConfig, generate_documents
    from caml_train.generate.spec import load_spec

    cfg = RunConfig(
        spec=load_spec(SPEC),
        spec_ref=SPEC,
        model="openai/scripted",
        api_base=api_base,
        api_key="x",
        out_dir=Path(out),
        cache_dir=Path(cache),
        n=n,
        concurrency=concurrency,
    )
    manifest = generate_documents(cfg)
    import caml_train

    trace = getattr(manifest, "concurrency", None) or {}  # the baseline has no auto
    print(
        json.dumps(
            {
                "seconds": manifest.seconds,
                "generated": manifest.counts.generated,
                "failed": manifest.counts.failed,
                "max_limit": trace.get("max_limit"),
                "final_limit": trace.get("final_limit"),
                "source": str(Path(caml_train.__file__).parents[1]),
            }
        )
    )


def _source_tree(rev: str, into: Path) -> Path:
    """`src/` of git revision `rev`, extracted under `into` (for the baseline)."""
    archive = into / "src.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


class _Server:
    """The scripted server with a fixed latency and (`rate` > 0) a rate limit answered with 429s,
    recording when its first request arrived and its last reply left."""

    def __init__(self, latency: float, rate: float = 0.0) -> None:
        from caml_train.generate.testing import (
            Reply,
            ScriptedOpenAIServer,
            TokenBucket,
            filler_text,
            user_text,
        )

        self.first_hit: float | None = None
        self.last_reply = 0.0
        self.limited = 0
        self._lock = threading.Lock()
        self._new_bucket = lambda: TokenBucket(rate, rate * latency) if rate > 0 else None
        self._bucket = self._new_bucket()

        def responder(body: dict, number: int) -> Reply:
            with self._lock:
                if self.first_hit is None:
                    self.first_hit = time.time()
                if self._bucket is not None and not self._bucket.take():
                    self.limited += 1
                    return Reply(status=429, error_message="rate limited")
            reply = Reply(content=filler_text(user_text(body), 400), delay=latency)
            with self._lock:
                self.last_reply = max(self.last_reply, time.time() + latency)
            return reply

        self.server = ScriptedOpenAIServer(responder)

    def reset(self) -> None:
        self.first_hit = None
        self.last_reply = 0.0
        self.limited = 0
        self._bucket = self._new_bucket()


def run_one(server: _Server, src: Path | None, n: int, c: int | str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if src is not None:
            env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); import generation as g; "
            "c = sys.argv[4]; c = c if c == 'auto' else int(c); "
            "g._worker(sys.argv[2], int(sys.argv[3]), c, *sys.argv[5:7])"
        )
        out, cache = str(Path(tmp) / "out"), str(Path(tmp) / "cache")
        argv = [str(Path(__file__).parent), server.server.api_base, str(n), str(c), out, cache]
        server.reset()
        started = time.time()
        proc = subprocess.run(
            [sys.executable, "-c", code, *argv],
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise SystemExit(f"generation run failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if src is not None and Path(result["source"]).resolve() != src.resolve():
            raise SystemExit(f"imported {result['source']}, not {src}")
        result["startup"] = (server.first_hit or started) - started
        result["window"] = server.last_reply - (server.first_hit or started)
        result["limited"] = server.limited
        return result


def _concurrency(value: str) -> int | str:
    return value if value == "auto" else int(value)


def limit_per_s(c: int | str, latency: float, rate: float) -> float:
    """The most documents/s the server allows: C / latency, capped by its rate limit (auto: the
    rate limit itself)."""
    if c == "auto":
        return rate
    return min(c / latency, rate) if rate > 0 else c / latency


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.5, help="server seconds per request")
    parser.add_argument(
        "--rate",
        type=float,
        default=24.0,
        help="server rate limit, requests/s, answered with 429s (0: none; auto needs one)",
    )
    parser.add_argument("--concurrency", type=_concurrency, nargs="+", default=[1, 8, 32, "auto"])
    parser.add_argument("--per-slot", type=int, default=8, help="documents per concurrent slot")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision, or 'none'")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if "auto" in args.concurrency and args.rate <= 0:
        raise SystemExit("--concurrency auto needs a server rate limit to find (--rate > 0)")

    server = _Server(args.latency, args.rate)
    results: dict[str, dict[int | str, dict]] = {}
    with server.server, tempfile.TemporaryDirectory() as tmp:
        trees: dict[str, Path | None] = {"ours": REPO / "src"}
        if args.baseline != "none":
            trees[f"baseline {args.baseline}"] = _source_tree(args.baseline, Path(tmp))
        for c in args.concurrency:
            for name, src in trees.items():
                if c == "auto" and name != "ours":
                    continue  # the baseline has no --concurrency auto
                limit = limit_per_s(c, args.latency, args.rate)
                n = args.per_slot * max(1, round(limit * args.latency))
                r = run_one(server, src, n, c)
                if r["generated"] + r["failed"] != n:
                    raise SystemExit(f"{name}: {r['generated']} generated of {n}")
                r["n"] = n
                r["docs_per_s"] = r["generated"] / r["window"]
                r["limit_per_s"] = limit
                r["of_limit"] = r["docs_per_s"] / limit
                results.setdefault(name, {})[c] = r
                print(
                    f"  {name} c={c}: {r['docs_per_s']:.1f}/s ({r['of_limit']:.1%} of {limit:g}/s),"
                    f" {r['limited']} 429s, {r['failed']} failed",
                    file=sys.stderr,
                )

    names = list(results)
    rate = f"rate limit {args.rate:g}/s (429s)" if args.rate > 0 else "no rate limit"
    print(
        f"latency {args.latency} s per request, {rate}; documents/s and share of the limit"
        " min(C / latency, rate limit)"
    )
    header = f"{'concurrency':>11}{'limit/s':>9}" + "".join(f"{n:>34}" for n in names)
    if len(names) == 2:
        header += f"{'ours / baseline':>17}"
    print(header)
    for c in args.concurrency:
        line = f"{c!s:>11}{limit_per_s(c, args.latency, args.rate):>9.1f}"
        for name in names:
            r = results[name].get(c)
            if r is None:
                line += f"{'-':>30}    "
                continue
            cell = f"{r['docs_per_s']:.1f} ({r['of_limit']:.1%}) {r['limited']:>4} 429s"
            line += f"{cell:>30}    "
        if len(names) == 2 and c in results[names[1]]:
            ratio = results[names[0]][c]["docs_per_s"] / results[names[1]][c]["docs_per_s"]
            line += f"{ratio:>13.2f}x"
        print(line)
    if "auto" in results["ours"]:
        r = results["ours"]["auto"]
        best = args.rate * args.latency
        print(
            f"auto: limit reached {r['max_limit']}, ended at {r['final_limit']}"
            f" (best concurrency rate x latency = {best:g})"
        )
    line = f"{'start-up s':>20}"
    for name in names:
        startups = [r["startup"] for r in results[name].values()]
        line += f"{min(startups):>22.2f} (best)    "
    print(line)
    if args.json:
        Path(args.json).write_text(
            json.dumps({k: {str(c): v for c, v in d.items()} for k, d in results.items()}, indent=2)
        )


if __name__ == "__main__":
    main()
