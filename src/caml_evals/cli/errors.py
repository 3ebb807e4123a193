"""The one error rule of every command line (`caml-evals`, `caml-train`).

- A user's mistake (`caml_evals.errors.UserError`, any Inspect `PrerequisiteError`, a bad
  argument caught by argparse, or an exception type the caller names in `user_errors`) is ONE
  line on stderr, `<prog> <command>: <message>`, and exit code 2 (`EXIT_USER_ERROR`).
- Anything else is a bug: one line saying so, with the path of a log file holding the full
  traceback (under `$CAML_EVALS_CACHE/crash/`, else the user cache dir, else the temp dir),
  and exit code 3 (`EXIT_BUG`).
- A file-system error naming a path (no such file, not a folder, permission denied, disk full,
  read-only: an `OSError` with a `filename`) is the user's too: one line `<path>: <reason>`,
  exit 2. A command should still raise `OutputError` / `LogReadError` itself, with more to say;
  this catches the writes and reads that do not.
- Ctrl-C is one line and exit code 130. `SystemExit` (`--help`, an explicit exit) passes.

Why here and not in each command: a command that forgets its try/except would print a
traceback for a typo in a path; with one wrapper no command can. Nothing heavy is imported
until an error happens, so `caml-evals --help` stays fast.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import os
import sys
import tempfile
import traceback
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

EXIT_INTERRUPTED = 130
CRASH_DIR = "crash"
# OSError numbers that describe the user's file system, not a bug
PATH_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.EACCES,
        errno.EPERM,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENOSPC,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.EDQUOT,
    }
)


def command_prog(base: str, argv: Sequence[str], commands: Sequence[str]) -> str:
    """`base <command>` for the first argument that is a known command, else `base`."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return f"{base} {first}" if first in commands else base


def one_line(message: str) -> str:
    """A message as one line (a multi-line message's lines joined with '; ')."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return "; ".join(lines)


def _raise_usage(parser: argparse.ArgumentParser, message: str) -> None:
    from caml_evals.errors import ConfigError

    raise ConfigError(f"{parser.prog}: {message} (see {parser.prog} --help)")


def one_line_argparse(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make `parser` and all its subparsers raise a ConfigError instead of printing usage and
    exiting, so an argument mistake follows the same one-line rule as every other."""
    parser.error = types.MethodType(_raise_usage, parser)  # type: ignore[method-assign]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                one_line_argparse(sub)
    return parser


def _path_error(ex: BaseException) -> str | None:
    """`<path>: <reason>` for an OSError about a path the user gave, else None."""
    if isinstance(ex, OSError) and ex.filename is not None and ex.errno in PATH_ERRNOS:
        return f"{ex.filename}: {ex.strerror or type(ex).__name__}"
    return None


def _is_user_error(ex: BaseException, extra: tuple[type[BaseException], ...]) -> bool:
    if extra and isinstance(ex, extra):
        return True
    # loaded only if something raised one: no import cost on the happy path
    inspect_errors = sys.modules.get("inspect_ai._util.error")
    if inspect_errors is not None and isinstance(ex, inspect_errors.PrerequisiteError):
        return True
    ours = sys.modules.get("caml_evals.errors")
    return ours is not None and isinstance(ex, ours.UserError)


def crash_dir() -> Path:
    """Where tracebacks of unexpected errors go: `$CAML_EVALS_CACHE/crash`, else the user
    cache dir's `crash/`."""
    override = os.environ.get("CAML_EVALS_CACHE")
    if override:
        return Path(override) / CRASH_DIR
    import platformdirs

    return Path(platformdirs.user_cache_dir("caml-evals")) / CRASH_DIR


def write_traceback(prog: str, ex: BaseException) -> Path | None:
    """The traceback of `ex` in a new file (None when no folder at all can be written)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    name = f"{prog.replace(' ', '-')}-{stamp}-{os.getpid()}.log"
    text = (
        f"{prog}: {' '.join(sys.argv)}\n"
        f"python {sys.version.split()[0]}, {dt.datetime.now(dt.timezone.utc).isoformat()}\n\n"
        + "".join(traceback.format_exception(type(ex), ex, ex.__traceback__))
    )
    for folder in (crash_dir(), Path(tempfile.gettempdir()) / "caml-evals-crash"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return None


def run_cli(
    prog: str,
    fn: Callable[..., Any],
    *args: Any,
    user_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """`fn(*args)` under the error rule (module docstring); returns the exit code."""
    try:
        return int(fn(*args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except Exception as ex:  # noqa: BLE001 - the one place every error is turned into a line
        from caml_evals.errors import EXIT_BUG, EXIT_USER_ERROR

        path_message = None if _is_user_error(ex, user_errors) else _path_error(ex)
        if path_message is not None or _is_user_error(ex, user_errors):
            message = path_message or one_line(str(ex)) or type(ex).__name__
            base = prog.split()[0]
            prefixed = message.startswith((f"{base} ", f"{base}:"))
            line = message if prefixed else f"{prog}: {message}"
            print(line, file=sys.stderr)
            return EXIT_USER_ERROR
        path = write_traceback(prog, ex)
        where = f"the traceback is in {path}" if path else "no traceback file could be written"
        detail = one_line(str(ex))
        detail = detail if len(detail) <= 200 else detail[:197] + "..."
        print(
            f"{prog}: unexpected error (a bug; please report it): {type(ex).__name__}: {detail}; "
            f"{where}",
            file=sys.stderr,
        )
        return EXIT_BUG


__all__ = ["command_prog", "crash_dir", "one_line", "one_line_argparse", "run_cli"]
