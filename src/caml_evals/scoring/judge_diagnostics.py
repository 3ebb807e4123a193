"""Per judge variant of a calibration report: order effect, length bias, repeat agreement.

The agreement report compares each judge variant with humans on the same items. These checks
read what the rubric scorer recorded for those same items in the judging's log (the key names
each source log): the criterion's grades in both criteria orders (`criteria_order=both`), its
grades over judge repeats (`judge_repeats=k`), and the answer's length. Per variant:

- `order_effect`: mean |grade in the shuffled order - grade in the reversed order| over items;
- `repeat_agreement`: share of items whose grade was the same in every repeat;
- `length_corr_judge` / `length_corr_human`: Spearman correlation of the judge's grades, and of
  the human mean, with the answer's length (tokens, else words) on the same items;
  `length_corr_diff` = judge - human: > 0 means the judge rewards length more than people do.

A check the log has no record for (a judging without both orders, or without repeats, or a log
that can no longer be read: listed in `unreadable_logs`) is None: not measured, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from .judge_checks import ANSWER_KEY, CALLS_KEY


def _log_scores(path: str, scorer: str) -> tuple[dict[tuple[str, int], dict], dict[str, str]]:
    """(sample id, epoch) -> score metadata of `scorer`; and grader label -> export name."""
    from ..judging.export import _grader_names
    from ..logs import read_log

    log = read_log(path)
    out: dict[tuple[str, int], dict] = {}
    graders: set[str] = set()
    for sample in log.samples or []:
        score = (sample.scores or {}).get(scorer)
        if score is None:
            score = next(iter((sample.scores or {}).values()), None)
        if score is not None:
            meta = score.metadata or {}
            out[(str(sample.id), int(sample.epoch))] = meta
            graders.update(meta.get("graders") or [])
    return out, _grader_names(log, graders)


def _length(meta: Mapping[str, Any]) -> float:
    record = meta.get(ANSWER_KEY) or {}
    value = record.get("tokens")
    if value is None:
        value = record.get("words")
    return math.nan if value is None else float(value)


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return None
    return float(spearmanr(x[keep], y[keep]).statistic)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def variant_checks(data: Any, key: Any) -> dict[str, dict[str, Any]]:
    """The checks for every grader variant of aligned ratings (`judging.align`) and its key."""
    from ..judging.align import human_means

    human = human_means(data.counts, data.scale)
    entries = [key.items[i] for i in data.item_ids]
    from ..errors import UserError

    logs: dict[tuple[str, str], tuple[dict, dict[str, str]]] = {}
    unreadable: dict[str, str] = {}
    out: dict[str, dict[str, Any]] = {}
    for name, variant in data.variants.items():
        if variant.kind != "grader":
            continue
        diffs: list[float] = []
        agree: list[float] = []
        lengths = np.full(len(entries), np.nan)
        for j, entry in enumerate(entries):
            source = next((s for s in entry.sources if s.label == variant.source), None)
            if source is None:
                continue
            cache_key = (source.log, source.scorer)
            if source.log in unreadable:
                continue
            if cache_key not in logs:
                try:
                    logs[cache_key] = _log_scores(source.log, source.scorer)
                except UserError as ex:  # moved or deleted since the export: not measured
                    unreadable[source.log] = str(ex)
                    continue
            scores, names = logs[cache_key]
            meta = scores.get((str(entry.sample_id), int(entry.epoch)))
            if meta is None:
                continue
            lengths[j] = _length(meta)
            labels = {lab for lab, shown in names.items() if shown == variant.grader}
            calls = [
                c
                for c in meta.get(CALLS_KEY) or []
                if c.get("grader") in labels
                and (c.get("criterion") or c.get("dimension")) == entry.criterion
                and c.get("value") is not None
            ]
            by_order: dict[tuple[int, str | None], float] = {
                (int(c.get("repeat", 0)), c.get("order")): float(c["value"]) for c in calls
            }
            for (repeat, order), value in by_order.items():
                if order == "shuffled" and (repeat, "reversed") in by_order:
                    diffs.append(abs(value - by_order[(repeat, "reversed")]))
            by_repeat: dict[str | None, list[float]] = {}
            for (_, order), value in by_order.items():
                by_repeat.setdefault(order, []).append(value)
            repeated = [vs for vs in by_repeat.values() if len(vs) > 1]
            if repeated:
                agree.append(float(all(max(vs) - min(vs) < 1e-9 for vs in repeated)))
        judge_corr = _spearman(variant.values, lengths)
        human_corr = _spearman(human, lengths)
        out[name] = {
            "order_effect": _mean(diffs),
            "order_items": len(diffs),  # (item, repeat) pairs graded in both orders
            "repeat_agreement": _mean(agree),
            "repeat_items": len(agree),
            "length_corr_judge": judge_corr,
            "length_corr_human": human_corr,
            "length_corr_diff": (
                judge_corr - human_corr
                if judge_corr is not None and human_corr is not None
                else None
            ),
            "unreadable_logs": sorted(
                {s.log for e in entries for s in e.sources if s.label == variant.source}
                & set(unreadable)
            ),
        }
    return out
