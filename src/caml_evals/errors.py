"""The one base class of errors that are the user's to fix (a path, a value, a malformed file).

`UserError` subclasses Inspect's `PrerequisiteError`, so `inspect eval` prints its message alone,
without a traceback; every `caml-evals` / `caml-train` entry point turns it into one line on
stderr and exit code 2 (see `caml_evals.cli.errors`). Anything else that escapes a command is a
bug: a short message and the path of a log file with the traceback.

Raise a subclass (or `UserError` itself) with a message that names the file or parameter and
says what is wrong and what to do. Never catch a `UserError` to return a default.
"""

from __future__ import annotations

from inspect_ai._util.error import PrerequisiteError

# Exit codes every CLI uses (documented in docs/errors.md).
EXIT_OK = 0
EXIT_FAILURE = 1  # the command ran but its result says "failed" (e.g. a check did not pass)
EXIT_USER_ERROR = 2  # bad input: one line on stderr, nothing written
EXIT_BUG = 3  # an unexpected exception: a short message and the traceback's log file


class UserError(PrerequisiteError):
    """A problem with the user's input, reported as one clear line (no traceback).

    Also an ordinary exception: `str(err)` is the message and `err.args == (message,)`, so it
    can be raised and matched like the built-in exceptions it is mixed with below.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.message)


class DataSourceError(UserError, RuntimeError):
    """Benchmark data could not be found, read or validated; the message says what to do."""


class TaskArgumentError(UserError, ValueError):
    """A task parameter has a value the task or its data does not have (a dimension, a language)."""


class ConfigError(UserError, ValueError):
    """A YAML config, `--set` override or CLI option is invalid."""


class LogReadError(UserError, RuntimeError):
    """An eval log is missing, truncated or corrupt (the message names the file)."""


class OutputError(UserError, OSError):
    """An output path cannot be written (missing folder, no permission, is a directory)."""


__all__ = [
    "EXIT_BUG",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USER_ERROR",
    "ConfigError",
    "DataSourceError",
    "LogReadError",
    "OutputError",
    "TaskArgumentError",
    "UserError",
]
