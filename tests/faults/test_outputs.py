"""The atomic writer every judging output goes through (`caml_evals.outputs`): 4 cases.

Why here: "no partial output left behind" is one of the fault suite's promises, and these are
the functions that keep it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faultlib import assert_user_error, call

from caml_evals.outputs import atomic_path, writable_dir, writable_file, write_text


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old, complete")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("new, half")
        raise RuntimeError("the work failed half-way")
    assert target.read_text() == "old, complete" and _leftovers(tmp_path) == []
    write_text(target, "new, complete")
    assert target.read_text() == "new, complete" and _leftovers(tmp_path) == []
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)  # not mkstemp's 0600


def test_output_under_a_file_is_one_line(unwritable: Path) -> None:
    assert_user_error(call(lambda: write_text(unwritable / "x.json", "{}")), unwritable, "a file")
    assert_user_error(call(lambda: writable_dir(unwritable)), unwritable, "a file is in the way")


def test_folder_given_as_output_file_is_one_line(tmp_path: Path) -> None:
    assert_user_error(call(lambda: write_text(tmp_path, "{}")), tmp_path, "it is a folder")
    assert_user_error(call(lambda: writable_file(tmp_path)), tmp_path, "it is a folder")


def test_writable_dir_creates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert writable_dir(out) == out and not (tmp_path / "a").exists()
    write_text(out / "f.txt", "x")
    assert (out / "f.txt").read_text() == "x"
