"""`caml-evals ...`: a thin dispatcher. Each command group lives with the code it drives and
exposes `register(subparsers)`; this module only wires them together."""

from __future__ import annotations

import argparse
import importlib
import sys

# (module, what it adds) — each module defines register(subparsers: argparse._SubParsersAction)
COMMAND_MODULES = (
    "caml_evals.summary",  # summary LOG...: score tables of eval logs
    "caml_evals.suite",  # suite: every benchmark on one model + summary table
    "caml_evals.judging.cli",  # judge export|serve|import|report
    "caml_evals.stats.cli",  # compare, leaderboard
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caml-evals",
        description="Compassion evals on Inspect AI: scores, judge calibration, statistics.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as ex:
            if ex.name == name:  # a command group not built yet in this checkout
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
