"""Epoch reducer for dict scores whose keys or values may differ between epochs.

Inspect's built-in reducers expect every epoch's dict to have the same keys and present values;
with a judge that sometimes fails, neither holds. This one takes the union of keys and the mean
of present values per key (NaN where no epoch has one), and sums the missing and expected grade
counts so `missing_rate` stays a share of grades across epochs; the judge-check records (answer
length and truncation, order effect, judge repeats: `judge_checks`) are summed or concatenated.
"""

from __future__ import annotations

from typing import Any

from inspect_ai.scorer import Score, ScoreReducer, score_reducer

from .grades import EXPECTED_COUNT_KEY, MISSING_COUNT_KEY, nan_mean
from .judge_checks import reduce_records


@score_reducer(name="nan_mean")
def nan_mean_reducer() -> ScoreReducer:
    def reduce(scores: list[Score]) -> Score:
        if not scores:
            raise ValueError("nan_mean reducer: no scores to reduce")
        if not all(isinstance(s.value, dict) for s in scores):
            value = nan_mean(s.value for s in scores)  # scalar scores: NaN-tolerant mean
            return Score(value=value, explanation=f"nan_mean of {len(scores)} epochs")
        keys: dict[str, None] = {}
        for s in scores:
            keys.update(dict.fromkeys(s.value))  # type: ignore[arg-type]
        value = {
            k: nan_mean(s.value.get(k) for s in scores)  # type: ignore[union-attr]
            for k in keys
        }
        metadata: dict[str, Any] = {"epochs": len(scores)}
        metas = [s.metadata or {} for s in scores]
        metadata[MISSING_COUNT_KEY] = sum(int(m.get(MISSING_COUNT_KEY, 0)) for m in metas)
        if all(EXPECTED_COUNT_KEY in m for m in metas):  # else metrics fall back to the rates
            metadata[EXPECTED_COUNT_KEY] = sum(int(m[EXPECTED_COUNT_KEY]) for m in metas)
        metadata.update(reduce_records(metas))
        return Score(
            value=value,
            answer=scores[0].answer,
            explanation=f"nan_mean of {len(scores)} epochs",
            metadata=metadata,
        )

    return reduce
