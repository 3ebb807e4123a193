"""The headline of a task: which number stands for it when a table has room for one.

The task's card (`caml_evals/tasks/<folder>/card.yaml`, read by `caml_evals.cards`) names its
headline metric(s) and direction; the suite, `caml-evals summary`, the leaderboard and the
training results all ask here, so they never disagree on what a benchmark's number is:

- `headline_for(task, metrics, with_values)`: the metric name (Inspect's naming, e.g.
  `welfare_rate`, `acc_norm`, `accuracy`) of a log's metrics that is its headline;
- `headline_key_for(task, keys, keys_with_values)`: the same in score-frame keys (`welfare`,
  `overall`), for readers of score frames;
- `direction_for(task)` / `meaning_for(task)`: "higher" | "lower" | "n/a", and the card's line.

A task without a card (someone else's task, a test's) falls back to one generic preference
(`GENERIC_HEADLINE_METRICS`), as it always did. With a card, the first of the card's metrics
that has a value wins; when none has a value, the first one present is kept (it shows as
missing: switching to another metric would change what the column means); only when the log
has none of them does the generic rule apply.

Inspect reports metrics under names that are not always the score key: a scalar score (key
`overall` in a score frame) is Inspect's `accuracy` or `mean`, and TAC's outcome indicators
(`welfare`, ...) are reported as rates (`welfare_rate`, ...). `METRIC_NAMES` maps score keys to
those metric names. A key without a single value is never a generic headline while another
preferred key has values: a NaN headline would hide a score that exists.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from caml_evals.cards import Direction, find_card

from .logcompare import is_bookkeeping

# Inspect metric names, best first: the fallback for a task without a card.
GENERIC_HEADLINE_METRICS = (
    "overall",
    "welfare_rate",
    "acc_norm",
    "matching",
    "score",
    "accuracy",
    "mean",
)
HEADLINE_METRICS = GENERIC_HEADLINE_METRICS  # the older name

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


# The generic preference in score-frame keys: overall, welfare, acc_norm, matching, score.
HEADLINE_KEYS = tuple(dict.fromkeys(key_of_metric(m) for m in GENERIC_HEADLINE_METRICS))


def headline_metrics(task: str) -> tuple[str, ...]:
    """The card's headline metric names of `task`, or the generic preference without a card."""
    found = find_card(task)
    return tuple(found.headline) if found else GENERIC_HEADLINE_METRICS


def direction_for(task: str) -> Direction:
    """Whether higher is better for the task's headline ("n/a" without a card)."""
    found = find_card(task)
    return found.direction if found else "n/a"


def meaning_for(task: str) -> str:
    """The card's one line on what the headline measures ("" without a card)."""
    found = find_card(task)
    return found.meaning if found else ""


def _first(preferred: Iterable[str], present: list[str], valued: set[str]) -> str | None:
    preferred = list(dict.fromkeys(preferred))
    return next((m for m in preferred if m in valued), None) or next(
        (m for m in preferred if m in present), None
    )


def headline_for(
    task: str, metrics: Iterable[str], with_values: Iterable[str] | None = None
) -> str | None:
    """The headline metric name among a log's `metrics` (those in `with_values` have a value;
    default: all). None only when there are no metrics of the generic list either."""
    present = list(dict.fromkeys(metrics))
    valued = set(present if with_values is None else with_values)
    found = find_card(task)
    if found is not None:
        chosen = _first(found.headline, present, valued)
        if chosen is not None:
            return chosen
    return _first(GENERIC_HEADLINE_METRICS, present, valued)


def choose_headline(keys: Iterable[str], keys_with_values: Iterable[str]) -> str | None:
    """The generic rule in score keys: first preferred key that has values; else the first
    score key (not bookkeeping) with values; else any key with values; else the first preferred
    key present (its NaN then shows as missing); else the first key. None only without keys."""
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


def headline_key_for(task: str, keys: Iterable[str], keys_with_values: Iterable[str]) -> str | None:
    """The headline score key of `task` (card first, then `choose_headline`)."""
    keys = list(dict.fromkeys(keys))
    valued = set(keys_with_values)
    found = find_card(task)
    if found is not None:
        chosen = _first((key_of_metric(m) for m in found.headline), keys, valued)
        if chosen is not None:
            return chosen
    return choose_headline(keys, valued)


def headline_key(frame: pd.DataFrame, task: str | None = None) -> str | None:
    """The headline key over a score frame's rows (pass one task's rows). The task is read from
    the frame's `task` column when not given; without a card the generic rule applies."""
    if task is None and "task" in frame and len(frame):
        task = str(frame["task"].iloc[0])
    valued = frame.loc[frame["value"].notna(), "key"].unique()
    if task is None:
        return choose_headline(frame["key"], valued)
    return headline_key_for(task, frame["key"], valued)


__all__ = [
    "GENERIC_HEADLINE_METRICS",
    "HEADLINE_KEYS",
    "HEADLINE_METRICS",
    "METRIC_NAMES",
    "SCALAR_METRICS",
    "choose_headline",
    "direction_for",
    "headline_for",
    "headline_key",
    "headline_key_for",
    "headline_metrics",
    "key_of_metric",
    "meaning_for",
]
