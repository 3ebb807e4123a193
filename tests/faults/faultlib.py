"""Shared checks of the fault-injection suite: what "a clear one-line error" means, in one place.

A fault case passes when the bad input ends in its documented outcome, which for a user's mistake
is: exit code 2 (or, in-process, a `caml_evals.errors.UserError`), ONE line that names the file
and the problem, no traceback, and no partial output. Anything else (another exception, a
traceback, a multi-line message, a silent success) fails with a short description of what
happened instead, so the failure list reads as a defect list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caml_evals.errors import EXIT_USER_ERROR, UserError


@dataclass
class Outcome:
    """What a command or call did: exit code (or the exception that escaped) and its output."""

    code: int | str | None
    out: str = ""
    err: str = ""
    value: Any = None

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def call(fn: Callable[[], Any]) -> Outcome:
    """Run a library call in-process: a UserError is the expected way to fail (code 2)."""
    try:
        value = fn()
    except UserError as ex:
        return Outcome(EXIT_USER_ERROR, err=str(ex))
    except Exception as ex:  # noqa: BLE001 - the point: report what escaped instead
        return Outcome(f"raised {type(ex).__name__}", err=f"{type(ex).__name__}: {ex}")
    return Outcome(0, value=value)


def run_main(main: Callable[[Sequence[str]], int], argv: Sequence[str], capsys) -> Outcome:
    """Run a CLI entry point in-process, as the console script would (exit code, out, err)."""
    capsys.readouterr()
    try:
        code: int | str | None = main(list(argv))
    except SystemExit as ex:
        code = ex.code if isinstance(ex.code, int) or ex.code is None else 1
    except UserError as ex:
        # escaped the dispatcher: the console script would print a traceback
        captured = capsys.readouterr()
        return Outcome(
            "UserError escaped the entry point (a traceback at the shell)",
            captured.out,
            captured.err + f"\n{type(ex).__name__}: {ex}",
        )
    except Exception as ex:  # noqa: BLE001
        captured = capsys.readouterr()
        return Outcome(
            f"raised {type(ex).__name__}",
            captured.out,
            captured.err + f"\n{type(ex).__name__}: {ex}",
        )
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


_INFO = re.compile(r"^([\w.-]+( [\w.-]+)?: )?(note|warning|info):", re.IGNORECASE)


def _short(text: str, n: int = 400) -> str:
    text = text.strip()
    return text if len(text) <= n else text[:n] + " ..."


def assert_user_error(
    outcome: Outcome,
    names: str | Path | Sequence[str | Path],
    problem: str,
    *,
    leftovers: Sequence[Path] = (),
) -> str:
    """Exit 2, one line on stderr naming one of `names` (a path or its file name) and matching
    the regex `problem` (case-insensitive), no traceback, none of `leftovers` on disk.
    Lines that are notes or warnings (`note:`, `warning:`, after an optional program name) are
    not counted: the error is the one other line. Returns the line."""
    everything = outcome.out + outcome.err
    assert "Traceback" not in everything, f"traceback printed:\n{_short(everything, 2000)}"
    assert outcome.code == EXIT_USER_ERROR, (
        f"expected exit code 2 (a user error), got {outcome.code!r}: {_short(everything)}"
    )
    # informational lines a command printed before it met the problem are not the error
    lines = [x for x in outcome.err_lines if not _INFO.search(x)]
    assert len(lines) == 1, f"expected ONE line on stderr, got {len(lines)}:\n{_short(outcome.err)}"
    line = lines[0]
    if isinstance(names, (str, Path)):
        names = [names]
    wanted = {str(n) for n in names} | {Path(n).name for n in names}
    assert any(w in line for w in wanted), f"the line names none of {sorted(wanted)}: {line!r}"
    assert re.search(problem, line, re.IGNORECASE), f"the line does not say /{problem}/: {line!r}"
    for path in leftovers:
        assert not Path(path).exists(), f"partial output left behind: {path}"
    return line
