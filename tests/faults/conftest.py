"""Fixtures of the fault-injection suite (its checks live in faultlib.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def unwritable(tmp_path: Path) -> Path:
    """A path no one can write, even root: its parent is a regular file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    return blocker / "unwritable-out"
