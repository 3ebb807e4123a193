"""`caml-evals tasks`: the tasks `inspect eval caml_evals/<name>` can run, from the registry."""

from __future__ import annotations

import argparse
import json


def run(args: argparse.Namespace) -> int:
    from caml_evals._registry import registered_tasks

    tasks = registered_tasks()
    if args.json:
        print(json.dumps(tasks, indent=2))
        return 0
    width = max((len(t["name"]) for t in tasks), default=0)
    for t in tasks:
        print(f"{t['name']:<{width}}  {t['summary']}")
        if args.params and t["params"]:
            print(f"{'':<{width}}  -T {', '.join(t['params'])}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tasks",
        help="list the installed Inspect tasks (inspect list tasks only scans the current folder)",
    )
    p.add_argument("--params", action="store_true", help="also list each task's -T parameters")
    p.add_argument("--json", action="store_true", help="print JSON (name, params, summary)")
    p.set_defaults(func=run)
