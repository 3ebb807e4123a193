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

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy.special import stdtrit  # Student t quantile (scipy.stats.t.ppf)

from .frame import LogRef, expand_log_paths, log_location
from .reader import UNREADABLE_ANSWER, read_log_scores

log = logging.getLogger(__name__)

TOKENS_PER_UNIT = 100
ANSWER_COLUMNS = ["log", "sample_id", "epoch", "tokens", "words", "truncated"]


def answer_frame(logs: LogRef | Sequence[LogRef], scorer: str | None = None) -> pd.DataFrame:
    """One row per (log, sample, epoch) with a recorded answer: tokens, words, truncated.

    From the one score reader's records (cached; the scores' `answer` records), the first
    scorer with one unless `scorer` is named. Logs without answer records (older logs,
    non-rubric scorers) contribute no rows.
    """
    rows: list[list[Any]] = []
    for ref in expand_log_paths(logs):
        location = log_location(None, ref)
        unreadable = 0
        for sample in read_log_scores(ref, reasons=False).samples:
            names = [scorer] if scorer else list(sample.scores)
            answer = next(
                (r.answer for n in names if (r := sample.scores.get(n)) and r.answer is not None),
                None,
            )
            if answer == UNREADABLE_ANSWER:
                unreadable += 1
            elif answer is not None:
                rows.append([location, str(sample.id), sample.epoch, *answer])
        if unreadable:
            log.warning(
                "%s: %d answer records are not numbers; the length report leaves them out",
                location,
                unreadable,
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
    t = float(stdtrit(n - 1, 0.5 + ci / 2))
    raw, raw_se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(n))
    out = {"raw_diff": raw, "raw_ci_low": raw - t * raw_se, "raw_ci_high": raw + t * raw_se}
    slope = math.nan
    if np.ptp(x) > 0:
        from statsmodels.regression.linear_model import OLS  # not statsmodels.api: 4x lighter
        from statsmodels.tools.tools import add_constant

        fit = OLS(d, add_constant(x)).fit(cov_type="HC1")
        lc, lc_se = float(fit.params[0]), float(fit.bse[0])
        t2 = float(stdtrit(n - 2, 0.5 + ci / 2))
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
    return _length_controlled(qa, qb, ci)


def _length_controlled(
    qa: pd.DataFrame, qb: pd.DataFrame, ci: float
) -> dict[str, LengthControlled]:
    both = qa.join(qb, how="inner", lsuffix="_a", rsuffix="_b")
    out: dict[str, LengthControlled] = {}
    for task, rows in both.groupby(level="task"):
        out[str(task)] = length_controlled_difference(
            rows["value_a"], rows["value_b"], rows["length_a"], rows["length_b"], ci=ci
        )
    return out


@dataclass
class LengthInputs:
    """What the length report needs of the arms' score frames, small enough to outlive them:
    each arm's length summary and, for an arm with answer records, its per-question mean
    score and length (`per_question`). `caml-evals compare` frees the frames before the
    regressions import statsmodels."""

    key: str
    baseline: str
    summaries: dict[str, LengthSummary]
    per_question: dict[str, pd.DataFrame | None]  # None: the arm has no answer records


def length_inputs(
    arms: dict[str, pd.DataFrame], baseline: str, key: str = "overall"
) -> LengthInputs:
    """The arms' answer records (read from the files the frames name) reduced to per-question
    means. Arms are score frames (`score_frame`)."""
    summaries, questions = {}, {}
    for label, frame in arms.items():
        answers = answer_frame([p for p in frame["log"].unique() if not str(p).startswith("<")])
        summaries[label] = length_summary(answers)
        questions[label] = None if answers.empty else per_question(frame, answers, key)
    return LengthInputs(key, baseline, summaries, questions)


def length_report_from(inputs: LengthInputs, ci: float = 0.95) -> dict[str, Any]:
    """Per arm: truncated share and mean length; per arm vs the baseline and task: the raw and
    the length-controlled difference of the key."""
    report: dict[str, Any] = {
        "key": inputs.key,
        "arms": {label: s.model_dump() for label, s in inputs.summaries.items()},
        "differences": [],
    }
    base = inputs.per_question[inputs.baseline]
    for label, questions in inputs.per_question.items():
        if label == inputs.baseline or questions is None or base is None:
            continue
        for task, lc in _length_controlled(base, questions, ci).items():
            report["differences"].append(
                {"task": task, "a": inputs.baseline, "b": label, **lc.model_dump()}
            )
    return report


def length_report(
    arms: dict[str, pd.DataFrame], baseline: str, key: str = "overall", ci: float = 0.95
) -> dict[str, Any]:
    """`length_report_from(length_inputs(...))`: the report of score frames in one call."""
    return length_report_from(length_inputs(arms, baseline, key), ci=ci)


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
