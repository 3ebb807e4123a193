"""Per judge variant of a calibration report: order effect, length bias, repeat agreement, each
with a cluster-bootstrap CI.

The agreement report compares each judge variant with humans on the same items. These checks
read what the rubric scorer recorded for those same items in the judging's log (the key names
each source log; `caml_evals.scoring.judge_checks` writes the records): the criterion's grades in
both criteria orders (`criteria_order=both`), its grades over judge repeats (`judge_repeats=k`),
and the answer's length. Per variant:

- `order_effect`: mean |grade in the shuffled order - grade in the reversed order| over the
  (item, repeat) pairs graded in both orders;
- `repeat_agreement`: share of items whose grade was the same in every repeat;
- `length_corr_judge` / `length_corr_human`: Spearman correlation of the judge's grades, and of
  the human mean, with the answer's length, on the SAME items (graded by the judge, rated by a
  human, length known); `length_corr_diff` = judge - human on the same resamples: > 0, with a
  CI above 0, means the judge rewards length more than people do (a longer answer may really
  be better: the humans' own correlation is the yardstick, not 0).

Length is the answering model's token count when every item has one, else whitespace words for
all (never a mix of units). Ensemble variants (majority, mean) get the length checks; order and
repeats belong to one grader's calls and are None for them.

CIs: percentile intervals over resamples of whole QUESTIONS (sample id within its task): the
criteria of one answer share its length and its judge call, and the answers to one question
(epochs, models) share its difficulty, so items are not independent. The resampling is the
project's one cluster bootstrap (`caml_evals.stats.resampling.bootstrap_counts`, through
`judging.metrics.bootstrap_weights`); every check and variant is evaluated on the same
resamples, so the judge-vs-human difference is paired.

Each variant also carries the judge its log records (`judge`: grader models and settings, the
same record as the results tables' judge column).

A check the log has no record for (a judging without both orders, or without repeats, or a log
that can no longer be read: listed in `unreadable_logs`) is None: not measured, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UserError
from ..scoring.judge_checks import ANSWER_KEY, CALLS_KEY
from ..stats.resampling import encode_clusters
from . import metrics as M
from .align import AlignedRatings, human_means
from .analysis import summarise
from .schema import KeyEntry, RatingKey

CHECKS = (
    "order_effect",
    "repeat_agreement",
    "length_corr_judge",
    "length_corr_human",
    "length_corr_diff",
)
BOOTSTRAP_STREAM = 1  # the checks' own random stream: adding them leaves the agreement CIs alone


def _log_scores(
    path: str, scorer: str
) -> tuple[dict[tuple[str, int], dict], dict[str, str], dict[str, Any] | None]:
    """(sample id, epoch) -> score metadata of `scorer`; grader label -> export name; and the
    judge the log records (grader models and settings)."""
    from ..logs import read_log
    from ..scoring.judge_settings import logged_judge
    from .export import _grader_names

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
    return out, _grader_names(log, graders), logged_judge(log)


class _Logs:
    """Score metadata per judging log, each log read once; an unreadable one remembered."""

    def __init__(self) -> None:
        self._read: dict[tuple[str, str], tuple[dict, dict[str, str], dict[str, Any] | None]] = {}
        self.unreadable: dict[str, str] = {}

    def meta(self, entry: KeyEntry, log: str, scorer: str) -> tuple[dict | None, dict[str, str]]:
        if log in self.unreadable:
            return None, {}
        if (log, scorer) not in self._read:
            try:
                self._read[(log, scorer)] = _log_scores(log, scorer)
            except UserError as ex:  # moved or deleted since the export: not measured
                self.unreadable[log] = str(ex)
                return None, {}
        scores, names, _ = self._read[(log, scorer)]
        return scores.get((str(entry.sample_id), int(entry.epoch))), names

    def judge(self, log: str, scorer: str) -> dict[str, Any] | None:
        """The judge a log already read records (None: not read, unreadable or no judge)."""
        read = self._read.get((log, scorer))
        return read[2] if read is not None else None


def _lengths(entries: list[KeyEntry], logs: _Logs) -> tuple[np.ndarray, str]:
    """Each item's answer length (from the first judging log that recorded it) and its unit."""
    tokens = np.full(len(entries), np.nan)
    words = np.full(len(entries), np.nan)
    for j, entry in enumerate(entries):
        for source in entry.sources:
            meta, _ = logs.meta(entry, source.log, source.scorer)
            record = (meta or {}).get(ANSWER_KEY)
            if isinstance(record, Mapping):
                if record.get("tokens") is not None:
                    tokens[j] = float(record["tokens"])
                if record.get("words") is not None:
                    words[j] = float(record["words"])
                break
    recorded = ~np.isnan(words) | ~np.isnan(tokens)
    if recorded.any() and not np.isnan(tokens[recorded]).any():
        return tokens, "tokens"
    return words, "words"


def _call_records(
    entries: list[KeyEntry], logs: _Logs, source_label: str, grader: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per item: summed |order difference| and its pair count; repeat agreement (0/1) and
    whether the item was graded more than once in one order."""
    n = len(entries)
    order_sum, order_pairs = np.zeros(n), np.zeros(n)
    agree, repeated = np.zeros(n), np.zeros(n)
    for j, entry in enumerate(entries):
        source = next((s for s in entry.sources if s.label == source_label), None)
        if source is None:
            continue
        meta, names = logs.meta(entry, source.log, source.scorer)
        if meta is None:
            continue
        labels = {lab for lab, shown in names.items() if shown == grader}
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
                order_sum[j] += abs(value - by_order[(repeat, "reversed")])
                order_pairs[j] += 1
        by_repeat: dict[str | None, list[float]] = {}
        for (_, order), value in by_order.items():
            by_repeat.setdefault(order, []).append(value)
        groups = [vs for vs in by_repeat.values() if len(vs) > 1]
        if groups:
            repeated[j] = 1.0
            agree[j] = float(all(max(vs) - min(vs) < 1e-9 for vs in groups))
    return order_sum, order_pairs, agree, repeated


def _question_clusters(entries: list[KeyEntry]) -> np.ndarray:
    """Cluster codes: one per question (task and sample id), whatever its epochs and models."""
    labels = [
        f"{entry.sources[0].task if entry.sources else ''}\x1f{entry.sample_id}"
        for entry in entries
    ]
    return encode_clusters(labels, len(labels))


@dataclass
class ItemRecords:
    """One variant's per-item arrays (NaN = absent): what the bootstrap resamples."""

    judge: np.ndarray  # the variant's grade, on the items that also have a human and a length
    human: np.ndarray  # the human mean, on the same items
    order_sum: np.ndarray | None = None  # summed |shuffled - reversed| per item (graders only)
    order_pairs: np.ndarray | None = None
    agree: np.ndarray | None = None  # 1 = graded alike in every repeat
    repeated: np.ndarray | None = None  # 1 = graded more than once in one order

    def measured(self, check: str) -> bool:
        if check == "order_effect":
            return self.order_pairs is not None and self.order_pairs.sum() > 0
        if check == "repeat_agreement":
            return self.repeated is not None and self.repeated.sum() > 0
        return bool((~np.isnan(self.judge)).any())


def bootstrap_checks(
    records: Mapping[str, ItemRecords],
    lengths: np.ndarray,
    clusters: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, dict[str, dict | None]]:
    """Every check of every variant as a cell {value, lo, hi, undefined_share} (None: not
    measured), all on the same resamples of `clusters` (one code per item)."""

    def evaluate(W: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        out = {}
        for name, r in records.items():
            judge = M.spearman(W, r.judge, lengths)
            people = M.spearman(W, r.human, lengths)
            stats = {
                "length_corr_judge": judge,
                "length_corr_human": people,
                "length_corr_diff": judge - people,
            }
            if r.order_sum is not None and r.order_pairs is not None:
                stats["order_effect"] = M._div(W @ r.order_sum, W @ r.order_pairs)
            if r.agree is not None and r.repeated is not None:
                stats["repeat_agreement"] = M._div(W @ r.agree, W @ r.repeated)
            out[name] = stats
        return out

    point = evaluate(M.ones_weights(lengths.size))
    reps: dict[str, dict[str, list[np.ndarray]]] = {
        name: {m: [] for m in stats} for name, stats in point.items()
    }
    if n_resamples > 0 and lengths.size:
        rng = np.random.default_rng([int(seed), BOOTSTRAP_STREAM])
        for W in M.bootstrap_weights(clusters, n_resamples, rng):
            for name, stats in evaluate(W).items():
                for m, arr in stats.items():
                    reps[name][m].append(arr)
    return {
        name: {
            m: summarise(point[name][m], np.concatenate(reps[name][m] or [np.array([])]), ci)
            if r.measured(m)
            else None
            for m in CHECKS
        }
        for name, r in records.items()
    }


def variant_checks(
    data: AlignedRatings,
    key: RatingKey,
    n_resamples: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """The checks, each a cell {value, lo, hi, undefined_share} or None (not measured), for every
    variant of aligned ratings (`judging.align`) and its key; with the item counts behind them."""
    entries = [key.items[i] for i in data.item_ids]
    logs = _Logs()
    lengths, unit = _lengths(entries, logs)
    human = human_means(data.counts, data.scale)
    clusters = _question_clusters(entries)
    records: dict[str, ItemRecords] = {}
    for name, variant in data.variants.items():
        same = ~(np.isnan(variant.values) | np.isnan(human) | np.isnan(lengths))
        r = ItemRecords(
            judge=np.where(same, variant.values, np.nan), human=np.where(same, human, np.nan)
        )
        if variant.kind == "grader":
            r.order_sum, r.order_pairs, r.agree, r.repeated = _call_records(
                entries, logs, variant.source, variant.grader
            )
        records[name] = r
    cells = bootstrap_checks(records, lengths, clusters, n_resamples, seed, ci)
    out: dict[str, dict[str, Any]] = {}
    for name, variant in data.variants.items():
        r = records[name]
        sources = {
            (s.log, s.scorer) for e in entries for s in e.sources if s.label == variant.source
        }
        judges = [logs.judge(log, scorer) for log, scorer in sorted(sources)]
        out[name] = {
            **cells[name],
            "judge": next((j for j in judges if j is not None), None),
            "order_items": int(r.order_pairs.sum()) if r.order_pairs is not None else 0,
            "repeat_items": int(r.repeated.sum()) if r.repeated is not None else 0,
            "length_items": int((~np.isnan(r.judge)).sum()),
            "length_unit": unit,
            "n_clusters": int(np.unique(clusters).size),
            "unreadable_logs": sorted({log for log, _ in sources} & set(logs.unreadable)),
        }
    return out
