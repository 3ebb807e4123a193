"""Generation client speed: documents/s against the local test server, as a share of the limit.

A server that answers every request after a fixed latency L allows at most C / L documents per
second at C requests in flight; what the client does per reply (HTTP, litellm, parsing, caching,
accounting) and before its first request (imports, templates) is what keeps it below that. This
bench runs the real pipeline (`caml_train.generate.pipeline.generate_documents`: plan, cache,
litellm, filters, manifest) in a fresh process against `generate/testing.py`'s scripted server
on 127.0.0.1 (in this process, so the client's CPU is its own), at concurrency 1, 8 and 32 with
8 x C documents each (bounded: about 4 s each at the limit), and prints

- documents/s and its ratio to C / L, over the window from the server's first request to its
  last reply (the client's start-up is reported apart),
- start-up: from launching the process to the server seeing its first request,

for this checkout ("ours") and, with `--baseline REV` (default: the commit before the generation
speed work), the same pipeline from that git revision (`git archive` into a temporary folder, put
first on `PYTHONPATH`), side by side with the ratio ours / baseline.

    python bench/generation.py                      # ours vs the default baseline revision
    python bench/generation.py --baseline none      # ours only
    python bench/generation.py --latency 0.5 --concurrency 1 8 32

At the million-document scale (batch vs online price at 1M documents, dedup documents/s and peak
memory at 100k documents): `python bench/generation_scale.py`. `--concurrency auto` against a
rate-limited server is measured by tests/test_generate_concurrency.py (this server has no limit
for it to find).

Measured on 2 CPU cores shared with other work (load average ~9, 2026-12-02), latency 0.5 s,
`python bench/generation.py` (baseline f65dc22: litellm for every request, a template compiled
per request, cache fsync on the event loop, inspect_ai and scipy imported before the first call):

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


def _worker(api_base: str, n: int, concurrency: int, out: str, cache: str) -> None:
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

    print(
        json.dumps(
            {
                "seconds": manifest.seconds,
                "generated": manifest.counts.generated,
                "failed": manifest.counts.failed,
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
    """The scripted server with a fixed latency, recording when its first request arrived."""

    def __init__(self, latency: float) -> None:
        from caml_train.generate.testing import Reply, ScriptedOpenAIServer, filler_text, user_text

        self.first_hit: float | None = None
        self.last_reply = 0.0
        self._lock = threading.Lock()

        def responder(body: dict, number: int) -> Reply:
            with self._lock:
                if self.first_hit is None:
                    self.first_hit = time.time()
            reply = Reply(content=filler_text(user_text(body), 400), delay=latency)
            with self._lock:
                self.last_reply = max(self.last_reply, time.time() + latency)
            return reply

        self.server = ScriptedOpenAIServer(responder)

    def reset(self) -> None:
        self.first_hit = None
        self.last_reply = 0.0


def run_one(server: _Server, src: Path | None, n: int, c: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if src is not None:
            env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); import generation as g; "
            "g._worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:7])"
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
        return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.5, help="server seconds per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--per-slot", type=int, default=8, help="documents per concurrent slot")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision, or 'none'")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    server = _Server(args.latency)
    results: dict[str, dict[int, dict]] = {}
    with server.server, tempfile.TemporaryDirectory() as tmp:
        trees: dict[str, Path | None] = {"ours": REPO / "src"}
        if args.baseline != "none":
            trees[f"baseline {args.baseline}"] = _source_tree(args.baseline, Path(tmp))
        for c in args.concurrency:
            for name, src in trees.items():
                n = args.per_slot * c
                r = run_one(server, src, n, c)
                if r["generated"] != n or r["failed"]:
                    raise SystemExit(
                        f"{name}: {r['generated']}/{n} generated, {r['failed']} failed"
                    )
                r["docs_per_s"] = n / r["window"]
                r["of_limit"] = r["docs_per_s"] / (c / args.latency)
                results.setdefault(name, {})[c] = r

    names = list(results)
    print(f"latency {args.latency} s per request; documents/s and share of the limit C / latency")
    header = f"{'concurrency':>11}{'limit/s':>9}" + "".join(f"{n:>28}" for n in names)
    if len(names) == 2:
        header += f"{'ours / baseline':>17}"
    print(header)
    for c in args.concurrency:
        line = f"{c:>11}{c / args.latency:>9.1f}"
        for name in names:
            r = results[name][c]
            line += f"{r['docs_per_s']:>16.1f} ({r['of_limit']:>6.1%})    "
        if len(names) == 2:
            line += (
                f"{results[names[0]][c]['docs_per_s'] / results[names[1]][c]['docs_per_s']:>13.2f}x"
            )
        print(line)
    line = f"{'start-up s':>20}"
    for name in names:
        startups = [results[name][c]["startup"] for c in args.concurrency]
        line += f"{min(startups):>16.2f} (best)    "
    print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
