"""Argument types that refuse a bad number at parse time.

Why: argparse turns an `ArgumentTypeError` into one usage line and exit 2, the user-error rule of
`cli.errors.run_cli`. Checking `--ci 1.5` here means no command needs a try/except around its
statistics, and a `ValueError` that does escape a command stays what it is: a bug (exit 3).
"""

from __future__ import annotations

import argparse


def open_unit_interval(text: str) -> float:
    """A float strictly between 0 and 1 (a CI level, an alpha, a power)."""
    try:
        value = float(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from ex
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (resamples, repeats, counts)."""
    try:
        value = int(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from ex
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value
