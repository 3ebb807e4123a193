"""AHB language labels: the one normaliser of `caml_evals.data.languages` (canonical names)."""

from __future__ import annotations

from ...data.languages import ENGLISH, language_name, normalise_language

__all__ = ["ENGLISH", "language_name", "normalise_language"]
