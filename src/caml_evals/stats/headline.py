"""The headline of a task: which score key stands for it when a table has room for one number.

One ordered preference list serves the leaderboard and `caml-evals summary` (and through it the
suite table), so they never disagree on what a benchmark's number is. Inspect reports metrics
under names that are not always the score key: a scalar score (key `overall` in a score frame)
is Inspect's `accuracy` or `mean`, and TAC's outcome indicators (`welfare`, ...) are reported as
rates (`welfare_rate`, ...). `METRIC_NAMES` maps score keys to those metric names.

A key without a single value (every sample errored, every grade missing) is never a headline
while another preferred key has values: a NaN headline would hide a score that exists.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from .logcompare import is_bookkeeping

# Inspect metric names, best first (what `caml-evals summary` looks for in a log's metrics).
HEADLINE_METRICS = ("overall", "welfare_rate", "acc_norm", "matching", "score", "accuracy", "mean")

# Inspect reports a scalar score (choice tasks' C/I, plain floats) under these names.
SCALAR_METRICS = ("accuracy", "mean")

# Score key -> the metric our scorers report it as, where the two names differ (TAC's rates;
# kept equal to caml_evals.tasks.tac.metrics.OUTCOME_RATES, which a test checks).
METRIC_NAMES = {
    "welfare": "welfare_rate",
    "completed": "completion_rate",
    "harmful": "harmful_rate",
    "no_purchase": "no_purchase_rate",
    "invalid_purchase": "invalid_purchase_rate",
}


def key_of_metric(name: str) -> str:
    """The score-frame key an Inspect metric name reports (`accuracy` -> `overall`)."""
    if name in SCALAR_METRICS:
        return "overall"
    return next((k for k, m in METRIC_NAMES.items() if m == name), name)


# The same preference in score-frame keys: overall, welfare, acc_norm, matching, score.
HEADLINE_KEYS = tuple(dict.fromkeys(key_of_metric(m) for m in HEADLINE_METRICS))


def choose_headline(keys: Iterable[str], keys_with_values: Iterable[str]) -> str | None:
    """First preferred key that has values; else the first score key (not bookkeeping) with
    values; else any key with values; else the first preferred key present (its NaN then shows
    as missing); else the first key. None only when there are no keys."""
    keys = list(dict.fromkeys(keys))
    with_values = set(keys_with_values)
    valued = [k for k in keys if k in with_values]
    candidates = (
        [k for k in HEADLINE_KEYS if k in valued],
        [k for k in valued if not is_bookkeeping(k)],
        valued,
        [k for k in HEADLINE_KEYS if k in keys],
        keys,
    )
    return next((c[0] for c in candidates if c), None)


def headline_key(frame: pd.DataFrame) -> str | None:
    """`choose_headline` over a score frame's keys (all its rows: pass one task's rows)."""
    valued = frame.loc[frame["value"].notna(), "key"].unique()
    return choose_headline(frame["key"], valued)


__all__ = [
    "HEADLINE_KEYS",
    "HEADLINE_METRICS",
    "METRIC_NAMES",
    "SCALAR_METRICS",
    "choose_headline",
    "headline_key",
    "key_of_metric",
]
