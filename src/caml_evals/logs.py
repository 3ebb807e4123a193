"""The one finder and chooser of Inspect eval logs (summary, suite, leaderboard, judging, training).

Why one: each reader of logs used to find and pick its own (the suite took the newest log of a
task whatever its status, the leaderboard preferred successful ones), so two tables built from
one folder could show different runs. Every command now goes through these functions:

- `find_logs(paths)`: the log files named, and those under the folders named (recursively), in
  Inspect's order (newest first). A path that does not exist is a `LogReadError` naming it.
- `read_log_header(path)` / `read_log(path)`: Inspect's readers, with a missing, truncated or
  corrupt file turned into ONE `LogReadError` line that names the file.
- `choose_logs(paths)` / `latest_logs(paths)`: one log per (task, model, probe) by **the rule**:

      the newest successful log wins; with no successful log, the newest log of any status.
      Every other log of that task, model and probe is kept in `others` (with its status),
      reported by the caller as superseded, never averaged in.

  `probe` is the label of the depth probe the run was made with (`-T prefill=...`,
  `pushback=...`, `cot=true`, `steer=...`; '' for a plain run; `caml_evals.probes.record`): a
  probed run has the task name and sample ids of the plain run, and is not a newer try of it.

  "Newest" is the log's `eval.created` time, ties broken by the file's modification time.
  Task names are compared without their package prefix (`caml_evals/ahb` and `ahb` are one
  task). An unreadable log fails the whole choice with its name (`unreadable="raise"`, what the
  CLIs do: a table that silently leaves out a run is wrong) unless the caller asks to skip it
  (`unreadable="skip"`: it is listed in `LogSelection.unreadable` with its reason).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from .errors import LogReadError

if TYPE_CHECKING:
    from inspect_ai.log import EvalLog

LOG_SUFFIXES = (".eval", ".json")
SUCCESS = "success"

PathLike = str | os.PathLike[str]


def short_task(task: str) -> str:
    """A task name without its package prefix (`caml_evals/ahb` -> `ahb`)."""
    return task.rsplit("/", 1)[-1]


def _uri_to_path(name: str) -> Path:
    return Path(name.removeprefix("file://"))


def find_logs(
    paths: PathLike | Iterable[PathLike], *, require: bool = False, recursive: bool = True
) -> list[Path]:
    """Log files in `paths` (files as given, folders searched recursively unless not
    `recursive`), without duplicates.

    Raises LogReadError for a path that does not exist, and (with `require`) when no log is
    found at all (the message names the paths searched).
    """
    from inspect_ai.log import list_eval_logs

    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found.extend(
                _uri_to_path(info.name) for info in list_eval_logs(str(path), recursive=recursive)
            )
        elif path.is_file():
            found.append(path)
        else:
            raise LogReadError(f"{path}: no such log file or folder")
    unique = list(dict.fromkeys(found))
    if require and not unique:
        where = ", ".join(str(Path(p)) for p in items)
        raise LogReadError(f"{where}: no eval logs (.eval or .json) found")
    return unique


def _unreadable(path: Path, ex: BaseException) -> LogReadError:
    if isinstance(ex, FileNotFoundError) or not path.exists():
        return LogReadError(f"{path}: no such log file")
    if path.is_dir():
        return LogReadError(f"{path}: is a folder, not an eval log")
    detail = " ".join(str(ex).split()) or type(ex).__name__
    if len(detail) > 160:
        detail = detail[:157] + "..."
    return LogReadError(
        f"{path}: cannot read the eval log (corrupt or truncated?): {type(ex).__name__}: {detail}"
    )


def read_log_header(path: PathLike) -> EvalLog:
    """The log's header (no samples); LogReadError naming the file when it cannot be read."""
    from inspect_ai.log import read_eval_log

    path = Path(path)
    try:
        return read_eval_log(str(path), header_only=True)
    except Exception as ex:
        raise _unreadable(path, ex) from ex


def read_log(path: PathLike) -> EvalLog:
    """The whole log (with samples); LogReadError naming the file when it cannot be read."""
    from inspect_ai.log import read_eval_log

    path = Path(path)
    try:
        return read_eval_log(str(path))
    except Exception as ex:
        raise _unreadable(path, ex) from ex


class LogEntry(BaseModel):
    """What the chooser knows of one log file (from its header)."""

    path: str
    task: str = Field(description="Task name as logged (e.g. caml_evals/ahb)")
    model: str
    status: str = Field(description="success | error | cancelled | started")
    created: str = Field(description="eval.created (ISO time)")
    mtime_ns: int = 0
    probe: str = Field(default="", description="Probe label ('' for a plain run)")

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCESS


def log_entry(path: PathLike, header: EvalLog | None = None) -> LogEntry:
    """A LogEntry from the file's header (read here unless given)."""
    from .probes.record import probe_label, record_of

    path = Path(path)
    header = header if header is not None else read_log_header(path)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = 0
    return LogEntry(
        path=str(path),
        task=header.eval.task,
        model=header.eval.model,
        status=header.status,
        created=str(header.eval.created),
        mtime_ns=mtime,
        probe=probe_label(record_of(header.eval.metadata)),
    )


class LogChoice(BaseModel):
    """The log used for one (task, model, probe), and the others that were not."""

    task: str = Field(description="Task name without its package prefix")
    model: str
    probe: str = Field(default="", description="Probe label ('' for a plain run)")
    log: LogEntry
    others: list[LogEntry] = Field(
        default_factory=list, description="Superseded logs of this task and model, newest first"
    )

    @property
    def rule(self) -> str:
        if self.log.succeeded:
            return "newest successful log"
        return "newest log (none succeeded)"


class LogSelection(BaseModel):
    """The choice over a set of logs: one per (task, model, probe), and the files skipped."""

    choices: list[LogChoice] = Field(default_factory=list)
    unreadable: dict[str, str] = Field(
        default_factory=dict, description="path -> why it could not be read (skip mode only)"
    )

    @property
    def superseded(self) -> list[LogEntry]:
        return [o for c in self.choices for o in c.others]


def _rank(entry: LogEntry) -> tuple[bool, str, int]:
    return (entry.succeeded, entry.created, entry.mtime_ns)


def choose_entries(entries: Iterable[LogEntry]) -> list[LogChoice]:
    """Apply the rule (module docstring) to entries; choices sorted by (model, task, probe)."""
    groups: dict[tuple[str, str, str], list[LogEntry]] = {}
    for entry in entries:
        groups.setdefault((short_task(entry.task), entry.model, entry.probe), []).append(entry)
    choices = []
    for (task, model, probe), group in groups.items():
        group.sort(key=_rank, reverse=True)
        choices.append(
            LogChoice(task=task, model=model, probe=probe, log=group[0], others=group[1:])
        )
    return sorted(choices, key=lambda c: (c.model, c.task, c.probe))


def choose_logs(
    paths: PathLike | Iterable[PathLike],
    *,
    unreadable: Literal["raise", "skip"] = "raise",
    require: bool = False,
    recursive: bool = True,
) -> LogSelection:
    """`find_logs(paths)`, each header read, one log per (task, model, probe) by the rule."""
    entries: list[LogEntry] = []
    skipped: dict[str, str] = {}
    for path in find_logs(paths, require=require, recursive=recursive):
        try:
            entries.append(log_entry(path))
        except LogReadError as ex:
            if unreadable == "raise":
                raise
            skipped[str(path)] = str(ex)
    return LogSelection(choices=choose_entries(entries), unreadable=skipped)


def latest_logs(
    paths: PathLike | Iterable[PathLike],
    *,
    status: str | None = None,
    unreadable: Literal["raise", "skip"] = "raise",
    recursive: bool = True,
) -> list[LogChoice]:
    """The chosen log per (task, model, probe); with `status`, only logs of that status count."""
    selection = choose_logs(paths, unreadable=unreadable, recursive=recursive)
    if status is None:
        return selection.choices
    entries = [e for c in selection.choices for e in (c.log, *c.others) if e.status == status]
    return choose_entries(entries)


def log_paths(choices: Sequence[LogChoice]) -> list[Path]:
    """The chosen log files, in the choices' order."""
    return [Path(c.log.path) for c in choices]


__all__ = [
    "LOG_SUFFIXES",
    "LogChoice",
    "LogEntry",
    "LogSelection",
    "choose_entries",
    "choose_logs",
    "find_logs",
    "latest_logs",
    "log_entry",
    "log_paths",
    "read_log",
    "read_log_header",
    "short_task",
]
