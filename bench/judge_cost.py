"""Judge cost: grader calls and grader tokens per sample, per-dimension vs single-call judging.

Both runs answer the SAME AHB samples with the same (greedy) model, so the difference is only the
judging mode. Calls and tokens come from the rubric scorer's `grader_usage` score metadata, which
counts every grader call, including the local logprob grader's forward passes that leave no
model event in the log; logs without it fall back to grader-role model events and Inspect's
per-sample role usage. Runs offline on the embedded model by default:

    python bench/judge_cost.py --limit 4                       # embedded model answers and judges
    python bench/judge_cost.py --limit 4 --judge-logprobs      # per-dimension by P(YES)
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


def grader_cost(log: EvalLog, scorer: str = "rubric_scorer") -> tuple[list[int], list[int]]:
    """Grader calls and grader tokens per sample (and epoch) of a rubric-scored log."""
    calls, tokens = [], []
    for sample in log.samples or []:
        score = (sample.scores or {}).get(scorer)
        usage_by_grader = (score.metadata or {}).get("grader_usage") if score else None
        if usage_by_grader is not None:
            calls.append(sum(int(u.get("calls", 0)) for u in usage_by_grader.values()))
            tokens.append(sum(int(u.get("total_tokens", 0)) for u in usage_by_grader.values()))
            continue
        calls.append(
            sum(
                1
                for e in sample.events
                if e.event == "model" and getattr(e, "role", None) == "grader"
            )
        )
        usage = (sample.role_usage or {}).get("grader")
        tokens.append(usage.total_tokens if usage else 0)
    return calls, tokens


def run_mode(mode: str, args: argparse.Namespace, log_dir: str) -> tuple[EvalLog, float]:
    start = time.perf_counter()
    logprobs = args.judge_logprobs and mode == "per_dimension"
    [log] = eval(
        ahb(data_dir=args.data_dir, judge_mode=mode, judge_logprobs=logprobs),
        model=args.model,
        model_roles={"grader": args.grader},
        limit=args.limit,
        max_tokens=args.max_tokens,
        log_dir=log_dir,
        display="none",
    )
    return log, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="caml/smollm2")
    parser.add_argument("--grader", default="caml/smollm2")
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument(
        "--judge-logprobs",
        action="store_true",
        help="per-dimension mode grades by P(YES) (local graders: one forward pass)",
    )
    parser.add_argument(
        "--data-dir", default=os.environ.get("CAML_EVALS_DATA_DIR") or str(DEFAULT_DATA)
    )
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
    print(
        f"ratio per_dimension / single_call: calls x{pd[0] / sc[0]:.2f}, "
        f"grader tokens x{pd[1] / max(sc[1], 1):.2f}"
    )


if __name__ == "__main__":
    main()
