"""caml_evals.logs: the one finder and chooser of eval logs (summary, suite, leaderboard, ...).

The rule: per (task, model) the newest successful log, else the newest log of any status; the
others listed with their status. Unreadable or missing logs are one LogReadError naming them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from inspect_ai import Task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.solver import Generate, TaskState, solver

import caml_evals.models.providers  # noqa: F401  (registers scripted/ even without the entry point)
from caml_evals.errors import LogReadError, UserError
from caml_evals.logs import (
    LogEntry,
    choose_entries,
    choose_logs,
    find_logs,
    latest_logs,
    read_log,
    read_log_header,
    short_task,
)


@solver
def _fail():
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        raise RuntimeError("deliberate failure")

    return solve


def _run(log_dir: Path, *, fail: bool, name: str = "pick", model: str = "scripted/m") -> Path:
    task = Task(
        name=name, dataset=[Sample(input="hi", target="x")], solver=[_fail()] if fail else []
    )
    (log,) = inspect_eval(
        task, model=model, model_args={"reply": "x"}, log_dir=str(log_dir), display="none"
    )
    return Path(log.location.removeprefix("file://"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> dict[str, Path]:
    """pick/m: success (oldest), then error (newest); only/m: two errors; pick/other: success."""
    root = tmp_path_factory.mktemp("logs")
    runs = {
        "ok": _run(root, fail=False),
        "failed": _run(root / "sub", fail=True),  # in a subfolder: found recursively
        "err1": _run(root, fail=True, name="only"),
        "err2": _run(root, fail=True, name="only"),
        "other": _run(root, fail=False, model="scripted/other"),
    }
    # `created` has one-second resolution: make the order explicit through mtimes as well
    for i, key in enumerate(["ok", "failed", "err1", "err2", "other"]):
        os.utime(runs[key], ns=(10**18 + i * 10**9, 10**18 + i * 10**9))
    runs["root"] = root
    return runs


def test_find_logs_recurses_and_deduplicates(folder):
    found = find_logs([folder["root"], folder["ok"]])
    assert set(found) == {folder[k] for k in ("ok", "failed", "err1", "err2", "other")}
    assert len(found) == 5
    assert folder["failed"] not in find_logs(folder["root"], recursive=False)


def test_missing_paths_and_empty_folders_are_one_line_errors(tmp_path):
    with pytest.raises(LogReadError, match=r"nope\.eval: no such log file or folder"):
        find_logs([tmp_path / "nope.eval"])
    assert find_logs([tmp_path]) == []
    with pytest.raises(LogReadError, match="no eval logs"):
        find_logs([tmp_path], require=True)
    assert issubclass(LogReadError, UserError)


def test_truncated_and_garbage_logs_name_the_file(folder, tmp_path):
    truncated = tmp_path / "2026-01-01T00-00-00+00-00_pick_trunc.eval"
    truncated.write_bytes(folder["ok"].read_bytes()[:300])
    garbage = tmp_path / "2026-01-01T00-00-01+00-00_pick_garbage.json"
    garbage.write_text("{not json")
    for bad in (truncated, garbage):
        for reader in (read_log_header, read_log):
            with pytest.raises(LogReadError) as info:
                reader(bad)
            message = str(info.value)
            assert str(bad) in message and "cannot read" in message and "\n" not in message
    with pytest.raises(LogReadError, match="no such log file"):
        read_log_header(tmp_path / "gone.eval")
    with pytest.raises(LogReadError) as info:  # choosing over a folder with a bad log fails
        choose_logs([tmp_path])
    assert str(truncated) in str(info.value) or str(garbage) in str(info.value)
    skipped = choose_logs([tmp_path], unreadable="skip")
    assert skipped.choices == [] and set(skipped.unreadable) == {str(truncated), str(garbage)}


def test_the_rule_newest_successful_else_newest(folder):
    selection = choose_logs([folder["root"]])
    by_key = {(c.task, c.model): c for c in selection.choices}
    assert set(by_key) == {
        ("pick", "scripted/m"),
        ("only", "scripted/m"),
        ("pick", "scripted/other"),
    }
    pick = by_key[("pick", "scripted/m")]
    # the newer failed run does not replace the successful one; it is listed with its status
    assert Path(pick.log.path) == folder["ok"] and pick.rule == "newest successful log"
    assert [(Path(o.path), o.status) for o in pick.others] == [(folder["failed"], "error")]
    only = by_key[("only", "scripted/m")]
    assert only.log.status == "error" and only.rule == "newest log (none succeeded)"
    assert Path(only.log.path) == folder["err2"]  # newest (mtime breaks the created tie)
    assert [Path(o.path) for o in only.others] == [folder["err1"]]
    assert {Path(e.path) for e in selection.superseded} == {folder["failed"], folder["err1"]}


def test_latest_logs_by_status(folder):
    errors = latest_logs([folder["root"]], status="error")
    assert {(c.task, Path(c.log.path)) for c in errors} == {
        ("pick", folder["failed"]),
        ("only", folder["err2"]),
    }
    assert {c.log.status for c in latest_logs(folder["root"], status="success")} == {"success"}


def _entry(path: str, status: str, created: str, mtime: int = 0, task: str = "caml_evals/ahb"):
    return LogEntry(path=path, task=task, model="m", status=status, created=created, mtime_ns=mtime)


def test_choose_entries_orders_by_status_then_created_then_mtime():
    entries = [
        _entry("a", "success", "2026-01-01T10:00:00+00:00"),
        _entry("b", "success", "2026-01-01T11:00:00+00:00"),
        _entry("c", "error", "2026-01-01T12:00:00+00:00"),
        _entry("d", "success", "2026-01-01T11:00:00+00:00", mtime=5, task="ahb"),  # same task
        _entry("e", "cancelled", "2026-01-01T13:00:00+00:00"),
    ]
    (choice,) = choose_entries(entries)
    assert choice.task == "ahb" and choice.log.path == "d"
    assert [o.path for o in choice.others] == ["b", "a", "e", "c"]
    assert short_task("caml_evals/ahb") == "ahb" == short_task("ahb")
