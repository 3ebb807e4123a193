"""Shared fixtures. Real data is read from ../shared/data (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("INSPECT_LOG_LEVEL", "warning")
os.environ.setdefault("CAML_EVALS_CACHE", str(REPO_ROOT / ".cache" / "caml-evals"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real data folder; tests needing it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ahb_dir(shared_data: Path) -> Path:
    path = shared_data / "ahb-2.1"
    if not (path / "questions.jsonl").is_file():
        pytest.skip(f"AHB 2.1 data missing under {path}")
    return path


@pytest.fixture(scope="session")
def embedded_checkpoint() -> Path:
    """The dequantised embedded SmolLM2 checkpoint (built once into $CAML_EVALS_CACHE)."""
    from caml_evals.models.embedded import EmbeddedModelMissing, ensure_embedded_checkpoint

    try:
        return ensure_embedded_checkpoint()
    except EmbeddedModelMissing as ex:
        pytest.fail(str(ex))
