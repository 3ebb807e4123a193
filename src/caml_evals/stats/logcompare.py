"""Compare two models (or checkpoints) from their Inspect logs: one row per task x score key.

Pairing: samples are matched by task, sample id and variable set, and by epoch when both arms
ran the same epochs (otherwise each sample's epochs are averaged first). When fewer than half
of the smaller arm's samples match, the arms are compared unpaired. Samples that do not match
are counted (`n_unmatched_*`), never silently mixed in.

p-values are adjusted over the whole family of rows returned (every task x key, and every
model pair when the CLI compares several), because that is the family a reader scans. The
default keys leave bookkeeping out of that family (`is_bookkeeping`: missing_rate, unparsed,
completed, overall@<grader>, *_stderr); name them in `keys` to test them anyway.

`compare_key(frame_a, frame_b, key)` is the one-key form for callers that hold score frames
(the training results table): same pairing, one `ComparisonRow` back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from caml_evals.errors import UserError
from caml_evals.scoring.grades import GRADER_KEY_PREFIX

from .compare import compare_paired_matrix, compare_unpaired_matrix
from .estimates import summarize_matrix
from .frame import (
    MISSING_RATE_KEY,
    OVERALL_KEY,
    ClusterBy,
    LogRef,
    expand_log_paths,
    score_frame,
)
from .models import Comparison, ComparisonRow, Summary
from .multiple import AdjustMethod, adjust_pvalues
from .power import mdd_from_se
from .resampling import Alternative, CIMethod, ClusterWeight

log = logging.getLogger(__name__)

PAIRED_MIN_SHARE = 0.5  # share of the smaller arm's samples that must match to compare paired
FEW_CLUSTERS = 20  # below this many questions a bootstrap CI is too narrow (it undercovers)
MDD_POWER = 0.8  # power of the minimum detectable difference on every row


class LogCompareError(UserError, ValueError):
    """Two arms that cannot be compared as asked (nothing shared, ambiguous logs)."""


# Score keys that are bookkeeping, not a claim: the share of missing grades (reported as missing
# counts), unparsed replies, TAC's completion indicator. Per-grader overalls (`overall@<grader>`)
# re-test `overall` and any `*_stderr` is not a score. None of them belongs in the default family
# that Holm/BH adjust over (each would dilute the real tests); ask for them with `keys=`.
BOOKKEEPING_KEYS = frozenset({MISSING_RATE_KEY, "unparsed", "completed"})


def is_bookkeeping(key: str) -> bool:
    """True for keys left out of the default comparison family (see `BOOKKEEPING_KEYS`)."""
    return (
        key in BOOKKEEPING_KEYS
        or key.startswith(GRADER_KEY_PREFIX)
        or key.endswith(("_stderr", " stderr"))
    )


def default_keys(keys_a: Sequence[str], keys_b: Sequence[str]) -> list[str]:
    """Score keys both arms have: overall first, then the others in A's order.

    Bookkeeping keys (`is_bookkeeping`: missing_rate, unparsed, completed, overall@<grader>,
    *_stderr) are left out; they stay available when named in `keys`.
    """
    in_b = set(keys_b)
    shared = [k for k in dict.fromkeys(keys_a) if k in in_b and not is_bookkeeping(k)]
    return ([OVERALL_KEY] if OVERALL_KEY in shared else []) + [
        k for k in shared if k != OVERALL_KEY
    ]


def _label(frame: pd.DataFrame) -> str:
    models = [str(m) for m in frame["model"].unique()]  # first-seen order
    return models[0] if len(models) == 1 else " + ".join(models)


def _keys(frame: pd.DataFrame) -> list[str]:
    """The frame's score keys in first-seen order (one scan, not one per key)."""
    return [str(k) for k in frame["key"].unique()]


def _check_one_log_per_task(frame: pd.DataFrame, arm: str) -> None:
    per_task = frame.groupby("task")["log"].nunique()
    ambiguous = per_task[per_task > 1]
    if not ambiguous.empty:
        task = ambiguous.index[0]
        logs = sorted(frame.loc[frame["task"] == task, "log"].unique())
        raise LogCompareError(
            f"arm {arm} has {len(logs)} logs for task {task!r} ({', '.join(logs)}); "
            "give one log per task and arm"
        )


def _wide(frame: pd.DataFrame, index: list[str], keys: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    """Values (units x keys; NaN = missing or not applicable) and each unit's question id."""
    sub = frame[frame["key"].isin(keys)]
    values = sub.groupby(index + ["key"], sort=True)["value"].mean().unstack("key")
    values = values.reindex(columns=keys)
    questions = frame.groupby(index, sort=True)["question_id"].first().reindex(values.index)
    return values, questions


def _missing(
    frame: pd.DataFrame, keys: list[str], units: pd.Index | None, index: list[str]
) -> np.ndarray:
    """Missing observations per key (NaN rows that exist), within `units` if given."""
    sub = frame[frame["key"].isin(keys) & frame["value"].isna()]
    if units is not None and not sub.empty:
        sub = sub[pd.MultiIndex.from_frame(sub[index]).isin(units)]
    counts = sub.groupby("key")["value"].size()
    return np.array([int(counts.get(k, 0)) for k in keys])


def summarize_frame(
    frame: pd.DataFrame,
    keys: Sequence[str] | None = None,
    *,
    ci: float = 0.95,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    method: CIMethod = "percentile",
    cluster_weight: ClusterWeight = "size",
) -> dict[str, Summary]:
    """Each key's `Summary` (mean, clustered SE, bootstrap CI over questions) from a score frame.

    Every observation (log x sample x variable set x epoch) counts once; `n_missing` counts the
    key's NaN rows (unparseable grades, errored samples), which are left out of the mean.
    `keys=None`: every key in frame order. Pass the rows of one task.
    """
    keys = list(dict.fromkeys(frame["key"])) if keys is None else list(keys)
    if not keys:
        return {}
    index = ["log", "sample_id", "variant", "epoch"]
    wide, questions = _wide(frame, index, keys)
    summaries = summarize_matrix(
        wide.to_numpy(),
        questions.to_numpy(),
        ci=ci,
        n_resamples=n_resamples,
        seed=seed,
        method=method,
        cluster_weight=cluster_weight,
    )
    missing = _missing(frame, keys, None, index)
    return {k: _fix_counts(s, n_missing=int(m)) for k, s, m in zip(keys, summaries, missing)}


def _fix_counts(result: Any, **counts: int) -> Any:
    return result.model_copy(update=counts)


def compare_frames(
    frame_a: pd.DataFrame,
    frame_b: pd.DataFrame,
    *,
    keys: Sequence[str] | None = None,
    label_a: str | None = None,
    label_b: str | None = None,
    ci: float = 0.95,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    method: CIMethod = "percentile",
    paired: bool | None = None,
    alternative: Alternative = "two-sided",
    cluster_weight: ClusterWeight = "size",
) -> list[ComparisonRow]:
    """B versus A from two score frames (`score_frame`): one unadjusted row (p_adjusted =
    p_value) per task both frames have x key (`keys`, else `default_keys`).

    The engine of `compare_logs` and `caml-evals compare`, with the same pairing rules (see the
    module docstring). Each frame must hold one log per task. Adjust with `adjust_rows`.
    """
    _check_one_log_per_task(frame_a, "A")
    _check_one_log_per_task(frame_b, "B")
    label_a, label_b = label_a or _label(frame_a), label_b or _label(frame_b)
    tasks_b = set(frame_b["task"].unique())
    tasks = [t for t in frame_a["task"].unique() if t in tasks_b]
    if not tasks:
        raise LogCompareError(
            f"no task in common: A has {sorted(set(frame_a['task']))}, B has {sorted(set(frame_b['task']))}"
        )
    options = {
        "ci": ci,
        "n_resamples": n_resamples,
        "seed": seed,
        "alternative": alternative,
        "method": method,
        "cluster_weight": cluster_weight,
    }
    if keys:
        known = set(_keys(frame_a)) & set(_keys(frame_b))
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise LogCompareError(f"keys not in both arms: {unknown}; shared keys: {sorted(known)}")
    rows: list[ComparisonRow] = []
    by_task_a = dict(tuple(frame_a.groupby("task", sort=False)))
    by_task_b = dict(tuple(frame_b.groupby("task", sort=False)))
    for task in tasks:
        ta, tb = by_task_a[task], by_task_b[task]
        keys_a, keys_b = _keys(ta), _keys(tb)
        in_a, in_b = set(keys_a), set(keys_b)
        task_keys = list(keys) if keys else default_keys(keys_a, keys_b)
        task_keys = [k for k in task_keys if k in in_a and k in in_b]
        skipped = sorted(k for k in in_a ^ in_b if not is_bookkeeping(k))
        if skipped:
            log.warning("task %s: keys only one arm has, not compared: %s", task, skipped)
        if not task_keys:
            continue
        rows.extend(_compare_task(task, ta, tb, task_keys, label_a, label_b, paired, options))
    return rows


def compare_key(
    frame_a: pd.DataFrame,
    frame_b: pd.DataFrame,
    key: str,
    *,
    task: str | None = None,
    label_a: str | None = None,
    label_b: str | None = None,
    ci: float = 0.95,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    method: CIMethod = "percentile",
    paired: bool | None = None,
    alternative: Alternative = "two-sided",
    cluster_weight: ClusterWeight = "size",
) -> ComparisonRow:
    """B versus A on one score key of two score frames, as `compare_logs` would compare it.

    Pairing: by sample id + variable set + epoch when both arms ran the same epochs, else by
    sample id + variable set with each sample's epochs averaged; unpaired when fewer than half
    of the smaller arm's samples match (`paired=None`; True/False forces it). The result is a
    `ComparisonRow`, i.e. a `Comparison` (diff = mean_b - mean_a, CI, p-value, effect size,
    counts) plus how it was paired and each arm's own summary; `p_adjusted` equals `p_value`
    (adjust a family of them with `adjust_rows` or `adjust_pvalues`).

    `task` picks the task when the frames share several; each frame must hold one log for it.
    A key one arm lacks is a `LogCompareError`, never an empty result.
    """
    tasks_b = set(frame_b["task"].unique())
    shared = [str(t) for t in frame_a["task"].unique() if t in tasks_b]
    if task is None:
        if len(shared) != 1:
            raise LogCompareError(
                f"frames share {len(shared)} tasks ({shared}); pass task= to choose one"
            )
        task = shared[0]
    elif task not in shared:
        raise LogCompareError(f"task {task!r} is not in both frames (shared: {shared})")
    ta, tb = frame_a[frame_a["task"] == task], frame_b[frame_b["task"] == task]
    for arm, frame in (("A", ta), ("B", tb)):
        arm_keys = _keys(frame)
        if key not in arm_keys:
            raise LogCompareError(
                f"task {task}: key {key!r} not in arm {arm} (it has {sorted(arm_keys)})"
            )
    (row,) = compare_frames(
        ta,
        tb,
        keys=[key],
        label_a=label_a,
        label_b=label_b,
        ci=ci,
        n_resamples=n_resamples,
        seed=seed,
        method=method,
        paired=paired,
        alternative=alternative,
        cluster_weight=cluster_weight,
    )
    return row


def _compare_task(
    task: str,
    ta: pd.DataFrame,
    tb: pd.DataFrame,
    keys: list[str],
    label_a: str,
    label_b: str,
    paired: bool | None,
    options: dict[str, Any],
) -> list[ComparisonRow]:
    sample_index = ["sample_id", "variant"]
    units_a = pd.MultiIndex.from_frame(ta[sample_index].drop_duplicates())
    units_b = pd.MultiIndex.from_frame(tb[sample_index].drop_duplicates())
    shared = units_a.intersection(units_b)
    if paired is None:
        paired = len(shared) > 0 and len(shared) >= PAIRED_MIN_SHARE * min(
            len(units_a), len(units_b)
        )
    if paired and len(shared) == 0:
        raise LogCompareError(f"task {task}: no sample id (and variable set) is in both arms")

    # Each arm alone, over all its observations (sample x epoch).
    obs_index = ["sample_id", "variant", "epoch"]
    wide_a, q_a = _wide(ta, obs_index, keys)
    wide_b, q_b = _wide(tb, obs_index, keys)
    summary_options = {
        k: options[k] for k in ("ci", "n_resamples", "seed", "method", "cluster_weight")
    }
    sums_a = summarize_matrix(wide_a.to_numpy(), q_a.to_numpy(), **summary_options)
    sums_b = summarize_matrix(wide_b.to_numpy(), q_b.to_numpy(), **summary_options)
    miss_all_a, miss_all_b = (
        _missing(ta, keys, None, obs_index),
        _missing(tb, keys, None, obs_index),
    )
    sums_a = [_fix_counts(s, n_missing=int(m)) for s, m in zip(sums_a, miss_all_a)]
    sums_b = [_fix_counts(s, n_missing=int(m)) for s, m in zip(sums_b, miss_all_b)]

    unmatched_a = unmatched_b = 0
    if paired:
        same_epochs = set(ta["epoch"].unique()) == set(tb["epoch"].unique())
        index = obs_index if same_epochs else sample_index
        pairing = "sample+epoch" if same_epochs else "sample (epochs averaged)"
        va, qa = (wide_a, q_a) if same_epochs else _wide(ta, index, keys)
        vb, _ = (wide_b, q_b) if same_epochs else _wide(tb, index, keys)
        matched = va.index.intersection(vb.index)
        unmatched_a, unmatched_b = len(va.index) - len(matched), len(vb.index) - len(matched)
        results: list[Comparison] = compare_paired_matrix(
            va.loc[matched].to_numpy(),
            vb.loc[matched].to_numpy(),
            qa.loc[matched].to_numpy(),
            **options,
        )
        miss_a, miss_b = _missing(ta, keys, matched, index), _missing(tb, keys, matched, index)
    else:
        pairing = "unpaired"
        results = compare_unpaired_matrix(
            wide_a.to_numpy(), wide_b.to_numpy(), q_a.to_numpy(), q_b.to_numpy(), **options
        )
        miss_a, miss_b = miss_all_a, miss_all_b
    rows = []
    mdd_alpha = 1 - options["ci"]  # the level matching the CI shown next to it
    model_a, model_b = _label(ta), _label(tb)  # once per task, not once per key
    logs_a, logs_b = sorted(ta["log"].unique()), sorted(tb["log"].unique())
    for j, key in enumerate(keys):
        res = results[j]
        notes = []
        if 0 < res.n_clusters < FEW_CLUSTERS:
            notes.append(
                f"only {res.n_clusters} questions: bootstrap CIs are too narrow with so few clusters; "
                "rely on the permutation p-value"
            )
        if unmatched_a or unmatched_b:
            notes.append(f"unmatched and left out: {unmatched_a} of A, {unmatched_b} of B")
        if res.n == 0:
            notes.append("nothing to compare: no complete pair / an arm without scores")
        rows.append(
            ComparisonRow(
                **{
                    **res.model_dump(),
                    "n_missing_a": int(miss_a[j]),
                    "n_missing_b": int(miss_b[j]),
                },
                task=task,
                key=key,
                model_a=model_a,
                model_b=model_b,
                label_a=label_a,
                label_b=label_b,
                logs_a=logs_a,
                logs_b=logs_b,
                summary_a=sums_a[j],
                summary_b=sums_b[j],
                p_adjusted=res.p_value,
                adjust="none",
                mdd=mdd_from_se(res.se, alpha=mdd_alpha, alternative=options["alternative"]),
                mdd_alpha=mdd_alpha,
                mdd_power=MDD_POWER,
                pairing=pairing,
                n_unmatched_a=unmatched_a,
                n_unmatched_b=unmatched_b,
                notes=notes,
            )
        )
    return rows


def adjust_rows(
    rows: Sequence[ComparisonRow], method: AdjustMethod = "holm"
) -> list[ComparisonRow]:
    """Rows with `p_adjusted` over the whole family (all rows given)."""
    adjusted = adjust_pvalues([r.p_value for r in rows], method) if rows else np.array([])
    return [
        r.model_copy(update={"p_adjusted": float(p), "adjust": method})
        for r, p in zip(rows, adjusted)
    ]


def compare_logs(
    log_a: LogRef | Sequence[LogRef],
    log_b: LogRef | Sequence[LogRef],
    *,
    keys: Sequence[str] | None = None,
    scorer: str | None = None,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    adjust: AdjustMethod = "holm",
    ci: float = 0.95,
    method: CIMethod = "percentile",
    paired: bool | None = None,
    alternative: Alternative = "two-sided",
    cluster_weight: ClusterWeight = "size",
    cluster_by: ClusterBy = "question",
) -> list[ComparisonRow]:
    """B versus A for every task both have and every shared score key (or `keys`).

    log_a / log_b: a log path, a directory of logs, an EvalLog, or a list of them (one log per
    task). `paired=None` decides from the sample overlap. p-values are adjusted with `adjust`
    (holm, fdr_bh, bonferroni, none) over all rows returned. `cluster_by="source"` clusters
    SEs, CIs and the permutation test on sample metadata `source_id` (translations of one
    source question are one cluster) instead of the question; a log without it is an error.
    """
    # reasons=False: the rows count missing values but never say why, so the whole samples
    # that hold the reasons are not read
    frame_a = score_frame(expand_log_paths(log_a), scorer, cluster_by=cluster_by, reasons=False)
    frame_b = score_frame(expand_log_paths(log_b), scorer, cluster_by=cluster_by, reasons=False)
    rows = compare_frames(
        frame_a,
        frame_b,
        keys=keys,
        ci=ci,
        n_resamples=n_resamples,
        seed=seed,
        method=method,
        paired=paired,
        alternative=alternative,
        cluster_weight=cluster_weight,
    )
    return adjust_rows(rows, adjust)


__all__ = [
    "BOOKKEEPING_KEYS",
    "LogCompareError",
    "Summary",
    "adjust_rows",
    "compare_frames",
    "compare_key",
    "compare_logs",
    "default_keys",
    "is_bookkeeping",
    "summarize_frame",
]
