"""Find the project's data files (judge templates, benchmark sets) in any install.

In a wheel, `judges/` and `benchmarks/` are packaged as `caml_evals/_resources/...`; in an
editable install (a checkout) they stay at the repository root. Both are looked up here so no
other module needs to know which.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_CANDIDATE_ROOTS = (_PACKAGE_DIR / "_resources", _PACKAGE_DIR.parents[1])


def _find(kind: str, rel: str) -> Path:
    for root in _CANDIDATE_ROOTS:
        path = root / kind / rel
        if path.exists():
            return path
    searched = ", ".join(str(r / kind) for r in _CANDIDATE_ROOTS)
    raise FileNotFoundError(f"{kind}/{rel} not found (searched {searched})")


def judge_path(rel: str) -> Path:
    """A file under judges/ (prompt templates, calibration material)."""
    return _find("judges", rel)


def benchmark_path(rel: str) -> Path:
    """A file or folder under benchmarks/ (question sets this project wrote, cards)."""
    return _find("benchmarks", rel)
