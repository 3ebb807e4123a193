"""Answer length and truncation per arm, and a length-controlled difference between two arms.

A judge that rewards long answers makes a verbose checkpoint look more compassionate, and a
checkpoint whose answers hit the token cap loses points for what it never got to say. The
rubric scorer records each answer's length and whether it was cut (`answer` in the score
metadata: `caml_evals.scoring.judge_checks`); this module reads those records through the one
score reader's sample summaries and reports, per arm, the truncated share and the mean length,
and for two arms the difference at equal length beside the raw one.

Length-controlled difference (the idea of AlpacaEval's length-controlled win rate, for paired
scores): per question q, the score difference d_q = B - A (means over epochs) is regressed on the
length difference x_q = len_B - len_A (per 100 tokens): d_q = lc + slope * x_q. The intercept
`lc` is the difference the two arms would have at equal answer length; `slope` is how much a
question's difference moves per 100 extra tokens. SEs are heteroskedasticity-robust (HC1: each
question is one row, so this is the question-clustered SE); the raw difference is the mean of
d_q with its t interval, on the same questions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy import stats as sps

from .frame import LogRef, expand_log_paths, log_location

TOKENS_PER_UNIT = 100
ANSWER_COLUMNS = ["log", "sample_id", "epoch", "tokens", "words", "truncated"]


def _answer(scores: dict[str, Any], scorer: str | None) -> dict[str, Any] | None:
    names = [scorer] if scorer else list(scores)
    for name in names:
        score = scores.get(name) or {}
        meta = (
            score.get("metadata") if isinstance(score, dict) else getattr(score, "metadata", None)
        )
        record = (meta or {}).get("answer")
        if isinstance(record, dict):
            return record
    return None


def answer_frame(logs: LogRef | Sequence[LogRef], scorer: str | None = None) -> pd.DataFrame:
    """One row per (log, sample, epoch) with a recorded answer: tokens, words, truncated.

    Logs without answer records (older logs, non-rubric scorers) contribute no rows.
    """
    from inspect_ai.log import EvalLog

    from .reader import _summary_dicts

    rows: list[list[Any]] = []
    for ref in expand_log_paths(logs):
        location = log_location(None, ref)
        if isinstance(ref, EvalLog):
            summaries = (
                {
                    "id": s.id,
                    "epoch": s.epoch,
                    "scores": {n: {"metadata": sc.metadata} for n, sc in (s.scores or {}).items()},
                }
                for s in ref.samples or []
            )
        else:
            summaries = _summary_dicts(Path(ref))
        for summary in summaries:
            record = _answer(summary.get("scores") or {}, scorer)
            if record is None:
                continue
            tokens = record.get("tokens")
            rows.append(
                [
                    location,
                    str(summary["id"]),
                    int(summary["epoch"]),
                    math.nan if tokens is None else float(tokens),
                    float(record.get("words") or 0),
                    float(record.get("truncated") or 0) / max(int(record.get("answers", 1)), 1),
                ]
            )
    return pd.DataFrame.from_records(rows, columns=ANSWER_COLUMNS)


class LengthSummary(BaseModel):
    """Answer length and truncation of one arm."""

    answers: int
    truncated_share: float
    mean_answer_tokens: float
    mean_answer_words: float


def length_summary(answers: pd.DataFrame) -> LengthSummary:
    if answers.empty:
        return LengthSummary(
            answers=0,
            truncated_share=math.nan,
            mean_answer_tokens=math.nan,
            mean_answer_words=math.nan,
        )
    return LengthSummary(
        answers=len(answers),
        truncated_share=float(answers["truncated"].mean()),
        mean_answer_tokens=float(answers["tokens"].mean()),  # NaN-skipping: no usage, no count
        mean_answer_words=float(answers["words"].mean()),
    )


class LengthControlled(BaseModel):
    """B - A raw and at equal answer length, on the questions both arms answered."""

    n_questions: int
    raw_diff: float
    raw_ci_low: float
    raw_ci_high: float
    lc_diff: float
    lc_ci_low: float
    lc_ci_high: float
    slope_per_100_tokens: float
    mean_length_diff: float  # B - A, tokens


def length_controlled_difference(
    score_a: Sequence[float],
    score_b: Sequence[float],
    length_a: Sequence[float],
    length_b: Sequence[float],
    ci: float = 0.95,
) -> LengthControlled:
    """Per-question paired arrays (aligned): the raw and the length-controlled difference."""
    a, b = np.asarray(score_a, float), np.asarray(score_b, float)
    la, lb = np.asarray(length_a, float), np.asarray(length_b, float)
    keep = ~(np.isnan(a) | np.isnan(b) | np.isnan(la) | np.isnan(lb))
    d, x = (b - a)[keep], ((lb - la) / TOKENS_PER_UNIT)[keep]
    n = int(d.size)
    nan = dict.fromkeys(
        ["raw_diff", "raw_ci_low", "raw_ci_high", "lc_diff", "lc_ci_low", "lc_ci_high"], math.nan
    )
    if n < 3:
        return LengthControlled(
            n_questions=n,
            **nan,
            slope_per_100_tokens=math.nan,
            mean_length_diff=float(x.mean() * TOKENS_PER_UNIT) if n else math.nan,
        )
    t = float(sps.t.ppf(0.5 + ci / 2, n - 1))
    raw, raw_se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(n))
    out = {"raw_diff": raw, "raw_ci_low": raw - t * raw_se, "raw_ci_high": raw + t * raw_se}
    slope = math.nan
    if np.ptp(x) > 0:
        import statsmodels.api as sm

        fit = sm.OLS(d, sm.add_constant(x)).fit(cov_type="HC1")
        lc, lc_se = float(fit.params[0]), float(fit.bse[0])
        t2 = float(sps.t.ppf(0.5 + ci / 2, n - 2))
        out |= {"lc_diff": lc, "lc_ci_low": lc - t2 * lc_se, "lc_ci_high": lc + t2 * lc_se}
        slope = float(fit.params[1])
    else:  # equal lengths everywhere: nothing to control for
        out |= {"lc_diff": raw, "lc_ci_low": out["raw_ci_low"], "lc_ci_high": out["raw_ci_high"]}
    return LengthControlled(
        n_questions=n,
        **out,
        slope_per_100_tokens=slope,
        mean_length_diff=float(x.mean() * TOKENS_PER_UNIT),
    )


def per_question(frame: pd.DataFrame, answers: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per (task, question): mean score of `key` and mean answer tokens (words without usage)."""
    scores = frame[frame["key"] == key][
        ["log", "task", "sample_id", "question_id", "epoch", "value"]
    ]
    merged = scores.merge(answers, on=["log", "sample_id", "epoch"], how="left")
    merged["length"] = merged["tokens"].where(merged["tokens"].notna(), merged["words"])
    return merged.groupby(["task", "question_id"], as_index=True)[["value", "length"]].mean()


def length_controlled_frames(
    frame_a: pd.DataFrame,
    frame_b: pd.DataFrame,
    answers_a: pd.DataFrame,
    answers_b: pd.DataFrame,
    key: str = "overall",
    ci: float = 0.95,
) -> dict[str, LengthControlled]:
    """Per task: the length-controlled difference of `key` between two arms' score frames."""
    qa, qb = per_question(frame_a, answers_a, key), per_question(frame_b, answers_b, key)
    both = qa.join(qb, how="inner", lsuffix="_a", rsuffix="_b")
    out: dict[str, LengthControlled] = {}
    for task, rows in both.groupby(level="task"):
        out[str(task)] = length_controlled_difference(
            rows["value_a"], rows["value_b"], rows["length_a"], rows["length_b"], ci=ci
        )
    return out


def length_report(
    arms: dict[str, pd.DataFrame], baseline: str, key: str = "overall", ci: float = 0.95
) -> dict[str, Any]:
    """Per arm: truncated share and mean length; per arm vs `baseline` and task: the raw and
    the length-controlled difference of `key`. Arms are score frames (`score_frame`); their
    logs' answer records are read from the files the frames name."""
    answers = {
        label: answer_frame([p for p in frame["log"].unique() if not str(p).startswith("<")])
        for label, frame in arms.items()
    }
    report: dict[str, Any] = {
        "key": key,
        "arms": {label: length_summary(a).model_dump() for label, a in answers.items()},
        "differences": [],
    }
    for label, frame in arms.items():
        if label == baseline or answers[label].empty or answers[baseline].empty:
            continue
        rows = length_controlled_frames(
            arms[baseline], frame, answers[baseline], answers[label], key=key, ci=ci
        )
        for task, lc in rows.items():
            report["differences"].append(
                {"task": task, "a": baseline, "b": label, **lc.model_dump()}
            )
    return report


def _f(x: float, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def render_length(report: dict[str, Any]) -> str:
    """Plain-text tables of `length_report` (per arm; raw vs length-controlled differences)."""
    lines = ["answer length and truncation per arm:"]
    lines.append(
        f"  {'arm':<30}{'answers':>8}{'truncated':>11}{'mean tokens':>13}{'mean words':>12}"
    )
    for label, s in report["arms"].items():
        lines.append(
            f"  {label:<30}{s['answers']:>8}{_f(s['truncated_share']):>11}"
            f"{_f(s['mean_answer_tokens'], 1):>13}{_f(s['mean_answer_words'], 1):>12}"
        )
    if report["differences"]:
        lines.append(
            f"length-controlled difference of {report['key']} (B - A at equal answer length; "
            "regression of the per-question difference on the length difference):"
        )
        for d in report["differences"]:
            lines.append(
                f"  {d['task']}: {d['b']} - {d['a']}: raw {_f(d['raw_diff'])} "
                f"[{_f(d['raw_ci_low'])}, {_f(d['raw_ci_high'])}], length-controlled "
                f"{_f(d['lc_diff'])} [{_f(d['lc_ci_low'])}, {_f(d['lc_ci_high'])}], "
                f"slope {_f(d['slope_per_100_tokens'])}/100 tokens, length diff "
                f"{_f(d['mean_length_diff'], 1)} tokens, {d['n_questions']} questions"
            )
    elif not any(s["answers"] for s in report["arms"].values()):
        lines.append("  (no answer records in these logs: they predate the length records)")
    return "\n".join(lines)
