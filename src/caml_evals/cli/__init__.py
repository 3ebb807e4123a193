"""`caml-evals ...`: the dispatcher. argparse only; the work is in the library modules.

Subcommands are registered lazily: `COMMANDS` names each command's module and its help line, and
only the module of the command being run is imported (each defines `register(subparsers)`).
`caml-evals --help` lists every command from the table without importing any of them, so
start-up does not pay for Inspect, pandas and the judging app to print a usage line.

Every command runs under one error rule (`caml_evals.cli.errors.run_cli`): a user's mistake is
one line `caml-evals <command>: <message>` and exit code 2, a bug a short line with the path of
its traceback and exit code 3 (docs/errors.md).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NamedTuple

from .errors import command_prog, one_line_argparse, run_cli

PROG = "caml-evals"


class Command(NamedTuple):
    module: str  # defines register(subparsers); may register several commands
    help: str


# Table order is the order of `caml-evals --help`.
COMMANDS: dict[str, Command] = {
    "tasks": Command(
        "caml_evals.cli.tasks",
        "list the installed Inspect tasks (inspect list tasks only scans the current folder)",
    ),
    "summary": Command("caml_evals.cli.summary", "score tables of eval logs (files or folders)"),
    "suite": Command(
        "caml_evals.cli.suite",
        "run every benchmark (compassion set + controls) on one model and tabulate",
    ),
    "compare": Command(
        "caml_evals.stats.cli",
        "compare models/checkpoints from their eval logs (CIs, p-values, forest plot)",
    ),
    "leaderboard": Command(
        "caml_evals.stats.cli",
        "static HTML leaderboard (models x benchmarks with CIs) from log directories",
    ),
    "judge": Command(
        "caml_evals.judging.cli",
        "judge calibration: export items, rate them in a web app, report agreement",
    ),
    "depth": Command(
        "caml_evals.cli.probes",
        "per-token KL between two local checkpoints along their answers, by position",
    ),
    "probe": Command(
        "caml_evals.cli.probes",
        "depth-probe reports (prefill, pushback, cot) and the persona-vector probe",
    ),
}


def _unavailable(name: str, module: str):
    def run(args: argparse.Namespace) -> int:
        from caml_evals.errors import UserError

        raise UserError(f"this installation has no {module} (the {name} command is not built)")

    return run


def _register(subparsers: argparse._SubParsersAction, name: str) -> None:
    module_name = COMMANDS[name].module
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as ex:
        if ex.name != module_name:
            raise
        return  # a placeholder (below) says so when it is run
    module.register(subparsers)


def build_parser(command: str | None = None, *, lazy: bool = False) -> argparse.ArgumentParser:
    """The parser with `command`'s module registered (every module when not `lazy`); the
    others are placeholders that carry their help line from `COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Compassion evals on Inspect AI: scores, judge calibration, statistics. "
        "Exit codes: 0 ok, 1 a run or check failed, 2 a user error (one line), 3 a bug "
        "(docs/errors.md).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if lazy:
        wanted = [command] if command in COMMANDS else []
    else:
        wanted = list(COMMANDS)
    for name in wanted:
        if name not in subparsers.choices:
            _register(subparsers, name)
    for name, entry in COMMANDS.items():
        if name not in subparsers.choices:
            p = subparsers.add_parser(name, help=entry.help)
            p.set_defaults(func=_unavailable(name, entry.module))
    return parser


def _dispatch(argv: list[str], command: str | None) -> int:
    parser = one_line_argparse(build_parser(command, lazy=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def main(argv: list[str] | None = None) -> int:
    """The `caml-evals` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = command_prog(PROG, argv, list(COMMANDS))
    command = prog.split(" ", 1)[1] if " " in prog else None
    return run_cli(prog, _dispatch, argv, command)


__all__ = ["COMMANDS", "Command", "build_parser", "main"]
