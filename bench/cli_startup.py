"""Benchmark: `caml-evals` start-up, lazy dispatcher (ours) vs importing every command module.

Ours: `caml-evals tasks --help` and `caml-evals --help` as a user runs them (a fresh process each,
the console script beside this Python). Baseline: a fresh process that imports every command
module the old eager dispatcher imported before it could print a usage line
(`caml_evals.summary`, `caml_evals.suite`, `caml_evals.judging.cli`, `caml_evals.stats.cli`).
Each is run `--repeats` times; the median wall time is reported with the ratio.

    python bench/cli_startup.py
    python bench/cli_startup.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

EAGER = (
    "import importlib\n"
    "for m in ('caml_evals.summary', 'caml_evals.suite', 'caml_evals.judging.cli',"
    " 'caml_evals.stats.cli'):\n"
    "    importlib.import_module(m)\n"
)


def _median_wall(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    script = Path(sys.executable).with_name("caml-evals")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "caml_evals.cli"]
    rows = [
        ("caml-evals tasks --help (ours)", _median_wall([*cli, "tasks", "--help"], args.repeats)),
        ("caml-evals --help (ours)", _median_wall([*cli, "--help"], args.repeats)),
        ("import every command module", _median_wall([sys.executable, "-c", EAGER], args.repeats)),
    ]
    baseline = rows[-1][1]
    width = max(len(name) for name, _ in rows)
    print(f"{'':<{width}}  median wall (s)  baseline / this")
    for name, t in rows:
        print(f"{name:<{width}}  {t:15.3f}  {baseline / t:15.1f}x")


if __name__ == "__main__":
    main()
