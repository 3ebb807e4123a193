"""Judge cost: grader calls and grader tokens per sample, per-dimension vs single-call judging.

Both runs answer the SAME AHB samples with the same (greedy) model, so the difference is only the
judging mode. Calls are counted from the grader-role model events in each log; tokens from the
per-sample role usage Inspect records. Runs offline on the embedded model by default:

    python bench/judge_cost.py --limit 4                       # embedded model answers and judges
    python bench/judge_cost.py --model openai/gpt-4o-mini --grader openai/gpt-4o --limit 20

Prints a table and the ratio per-dimension / single-call (calls and tokens per sample).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from inspect_ai import eval
from inspect_ai.log import EvalLog

from caml_evals.tasks.ahb.task import ahb

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def grader_cost(log: EvalLog) -> tuple[list[int], list[int]]:
    calls, tokens = [], []
    for sample in log.samples or []:
        calls.append(sum(1 for e in sample.events if e.event == "model" and getattr(e, "role", None) == "grader"))
        usage = (sample.role_usage or {}).get("grader")
        tokens.append(usage.total_tokens if usage else 0)
    return calls, tokens


def run_mode(mode: str, args: argparse.Namespace, log_dir: str) -> tuple[EvalLog, float]:
    start = time.perf_counter()
    [log] = eval(
        ahb(data_dir=args.data_dir, judge_mode=mode),
        model=args.model,
        model_roles={"grader": args.grader},
        limit=args.limit,
        max_tokens=args.max_tokens,
        log_dir=log_dir,
        display="none",
    )
    return log, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="caml/smollm2")
    parser.add_argument("--grader", default="caml/smollm2")
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--data-dir", default=os.environ.get("CAML_EVALS_DATA_DIR") or str(DEFAULT_DATA))
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("per_dimension", "single_call"):
            log, seconds = run_mode(mode, args, str(Path(tmp) / mode))
            assert log.status == "success", log.error
            calls, tokens = grader_cost(log)
            results[mode] = (statistics.mean(calls), statistics.mean(tokens), seconds, len(calls))

    print(f"{'mode':<15}{'samples':>8}{'calls/sample':>14}{'tokens/sample':>15}{'wall s':>9}")
    for mode, (calls, tokens, seconds, n) in results.items():
        print(f"{mode:<15}{n:>8}{calls:>14.2f}{tokens:>15.0f}{seconds:>9.1f}")
    pd, sc = results["per_dimension"], results["single_call"]
    print(f"ratio per_dimension / single_call: calls x{pd[0] / sc[0]:.2f}, grader tokens x{pd[1] / max(sc[1], 1):.2f}")


if __name__ == "__main__":
    main()
