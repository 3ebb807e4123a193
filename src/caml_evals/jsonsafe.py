"""JSON has no NaN or infinity: every results file this project writes turns them into null.

One helper for every writer (stats reports, the suite summary, the training results), so a file
is parseable by strict readers (`json.loads(..., parse_constant=...)`, browsers, jq) everywhere.
"""

from __future__ import annotations

import math
from typing import Any


def nan_to_none(value: Any) -> Any:
    """A copy of a JSON-like tree with every non-finite float replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_none(v) for v in value]
    return value
