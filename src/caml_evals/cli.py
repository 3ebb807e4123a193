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


def _list_tasks(args: argparse.Namespace) -> int:
    """`caml-evals tasks`: the tasks `inspect eval caml_evals/<name>` can run, from the registry."""
    import json

    from ._registry import registered_tasks

    try:
        tasks = registered_tasks()
    except RuntimeError as ex:
        print(f"caml-evals tasks: {ex}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(tasks, indent=2))
        return 0
    width = max((len(t["name"]) for t in tasks), default=0)
    for t in tasks:
        print(f"{t['name']:<{width}}  {t['summary']}")
        if args.params and t["params"]:
            print(f"{'':<{width}}  -T {', '.join(t['params'])}")
    return 0


def _register_tasks_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tasks",
        help="list the installed Inspect tasks (inspect list tasks only scans the current folder)",
    )
    p.add_argument("--params", action="store_true", help="also list each task's -T parameters")
    p.add_argument("--json", action="store_true", help="print JSON (name, params, summary)")
    p.set_defaults(func=_list_tasks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caml-evals",
        description="Compassion evals on Inspect AI: scores, judge calibration, statistics.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_tasks_command(subparsers)
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
