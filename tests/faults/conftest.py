"""The fault-injection suite (issue 14): 152 bad-input cases, table-driven, ids `<what>-<fault>`.

  test_loaders.py      63  7 loaders x 9 faults (in-process task calls)
  test_clis.py         40  caml-evals (27) and caml-train (13) commands x missing/corrupt/unwritable
  test_inputs.py       36  ratings files CSV+JSONL (18), generation cache (9), configs (9)
  test_scripted_args.py 7  the scripted provider's -M arguments
  test_outputs.py       4  the atomic writer behind "no partial output"
  test_inspect_cli.py   2  through the real `inspect eval` (subprocesses)

plus one test per table that keeps its count honest. The checks live in faultlib.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def unwritable(tmp_path: Path) -> Path:
    """A path no one can write, even root: its parent is a regular file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    return blocker / "unwritable-out"
