"""What each rubric score records about the judge and the answer, and the metrics on it.

Per sample and epoch the scorer writes, into the score metadata:

- `answer`: the answer's length (`tokens` as the answering model counted them, from its usage;
  `words`, whitespace words, comparable across tokenizers) and whether it was cut by the
  token cap (`truncated`: the model's `stop_reason` was `max_tokens`). A judge that rewards
  length, or a checkpoint whose answers are cut, shows here before it shows in a difference.
- `order_effect` (criteria_order=both): each criterion graded with the criteria listed in a
  seeded shuffled order and in its reverse; the summed |difference| of the two grades and the
  summed (grade when listed earlier - grade when listed later), with their pair counts.
- `judge_repeats` (judge_repeats=k > 1): each grader's overall for each of the k calls on the
  same answer, and how many criterion grades agreed across all k calls.

Every record is made of sums and counts (or lists), so the epoch reducer can add them up and the
metrics read one shape whether or not epochs were reduced. The metrics exclude what is absent
(no usage reported: no token count) rather than counting it as 0.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np
from inspect_ai.scorer import Metric, SampleScore, metric

from .clustered import clustered_mean_se, clustered_ratio_se
from .grades import OVERALL_KEY, Grade, is_missing_value, score_value

ANSWER_KEY = "answer"
ORDER_EFFECT_KEY = "order_effect"
REPEATS_KEY = "judge_repeats"
CALLS_KEY = "grade_calls"  # every grader call's grades, when an answer had several calls
Z95 = 1.959963984540054
TOKENS_PER_UNIT = 100  # length_slope: score change per 100 answer tokens


# -- per sample and epoch ---------------------------------------------------------------------


def answer_record(output: Any, answer: str) -> dict[str, Any]:
    """Length and truncation of one answer (one epoch), as counts the reducer can add."""
    usage = getattr(output, "usage", None)
    tokens = getattr(usage, "output_tokens", None) if usage is not None else None
    # ModelOutput.stop_reason reads choices[0]: an output with no choice (no generate step in
    # the solver) has no stop reason, "unknown", and was not cut
    choices = getattr(output, "choices", None)
    stop_reason = str(choices[0].stop_reason or "unknown") if choices else "unknown"
    return {
        "tokens": float(tokens) if tokens is not None else None,
        "words": float(len(answer.split())),
        "stop_reason": stop_reason,
        "truncated": int(stop_reason == "max_tokens"),
        "answers": 1,
    }


def order_effect_record(calls: list[Grade]) -> dict[str, float]:
    """Pair each criterion's grade in the shuffled order with its grade in the reverse order."""
    by_key: dict[tuple[str, str, int], dict[str, Grade]] = {}
    for g in calls:
        if g.order in ("shuffled", "reversed"):
            by_key.setdefault((g.criterion_label, g.grader, g.repeat), {})[g.order] = g
    abs_sum = primacy_sum = 0.0
    pairs = primacy_pairs = 0
    for pair in by_key.values():
        a, b = pair.get("shuffled"), pair.get("reversed")
        if a is None or b is None or a.value is None or b.value is None:
            continue
        abs_sum += abs(a.value - b.value)
        pairs += 1
        if a.position is not None and b.position is not None and a.position != b.position:
            early, late = (a, b) if a.position < b.position else (b, a)
            primacy_sum += early.value - late.value  # type: ignore[operator]
            primacy_pairs += 1
    return {
        "abs_diff_sum": abs_sum,
        "pairs": pairs,
        "primacy_sum": primacy_sum,
        "primacy_pairs": primacy_pairs,
    }


def repeats_record(
    calls: list[Grade], dimensions: list[str], weights: Mapping[str, float] | None
) -> dict[str, Any]:
    """Each grader's overall per judge call on this answer, and criterion-level agreement."""
    overall: list[list[float]] = []
    for grader in dict.fromkeys(g.grader for g in calls):
        own = [g for g in calls if g.grader == grader]
        values = []
        for repeat in sorted({g.repeat for g in own}):
            v = score_value([g for g in own if g.repeat == repeat], dimensions, weights=weights)
            values.append(v[OVERALL_KEY])
        overall.append(values)
    groups: dict[tuple[str, str, str | None], list[float]] = {}
    for g in calls:
        if g.value is not None:
            groups.setdefault((g.criterion_label, g.grader, g.order), []).append(g.value)
    compared = [vs for vs in groups.values() if len(vs) > 1]
    return {
        "overall": overall,
        "agree": sum(1 for vs in compared if max(vs) - min(vs) < 1e-9),
        "compared": len(compared),
    }


# -- across epochs (the nan_mean reducer) -----------------------------------------------------


def _mean_present(values: Iterable[Any]) -> float | None:
    present = [float(v) for v in values if not is_missing_value(v)]
    return sum(present) / len(present) if present else None


def reduce_records(metas: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The judge-check records of several epochs of one sample, combined (sums and lists)."""
    out: dict[str, Any] = {}
    answers = [m[ANSWER_KEY] for m in metas if isinstance(m.get(ANSWER_KEY), Mapping)]
    if answers:
        reasons = list(dict.fromkeys(str(a.get("stop_reason")) for a in answers))
        out[ANSWER_KEY] = {
            "tokens": _mean_present(a.get("tokens") for a in answers),
            "words": _mean_present(a.get("words") for a in answers),
            "stop_reason": reasons[0] if len(reasons) == 1 else ",".join(reasons),
            "truncated": sum(int(a.get("truncated", 0)) for a in answers),
            "answers": sum(int(a.get("answers", 1)) for a in answers),
        }
    orders = [m[ORDER_EFFECT_KEY] for m in metas if isinstance(m.get(ORDER_EFFECT_KEY), Mapping)]
    if orders:
        out[ORDER_EFFECT_KEY] = {k: sum(o.get(k, 0) for o in orders) for k in orders[0]}
    repeats = [m[REPEATS_KEY] for m in metas if isinstance(m.get(REPEATS_KEY), Mapping)]
    if repeats:
        out[REPEATS_KEY] = {
            "overall": [vs for r in repeats for vs in r.get("overall", [])],
            "agree": sum(int(r.get("agree", 0)) for r in repeats),
            "compared": sum(int(r.get("compared", 0)) for r in repeats),
        }
    return out


# -- metrics ----------------------------------------------------------------------------------


def _cluster(sample: SampleScore) -> Hashable:
    from .metrics import cluster_of  # metrics imports this module

    return cluster_of(sample)


def _records(scores: list[SampleScore], key: str) -> list[tuple[Mapping[str, Any], SampleScore]]:
    return [
        ((s.score.metadata or {})[key], s)
        for s in scores
        if isinstance((s.score.metadata or {}).get(key), Mapping)
    ]


def _ci(mean: float, se: float, prefix: str) -> dict[str, float]:
    if math.isnan(se):
        return {f"{prefix}_ci_low": math.nan, f"{prefix}_ci_high": math.nan}
    return {f"{prefix}_ci_low": mean - Z95 * se, f"{prefix}_ci_high": mean + Z95 * se}


def length_slope(
    scores: Iterable[float], tokens: Iterable[float], clusters: Iterable[Hashable]
) -> tuple[float, float]:
    """(slope, cluster-robust SE) of score on answer length per 100 tokens (statsmodels OLS)."""
    y = np.asarray(list(scores), dtype=float)
    x = np.asarray(list(tokens), dtype=float) / TOKENS_PER_UNIT
    labels = np.asarray([str(c) for c in clusters], dtype=object)
    keep = ~(np.isnan(y) | np.isnan(x))
    y, x, labels = y[keep], x[keep], labels[keep]
    if y.size < 3 or np.ptp(x) == 0 or len(set(labels)) < 2:
        return math.nan, math.nan
    import statsmodels.api as sm

    _, groups = np.unique(labels, return_inverse=True)
    fit = sm.OLS(y, sm.add_constant(x)).fit(cov_type="cluster", cov_kwds={"groups": groups})
    return float(fit.params[1]), float(fit.bse[1])


@metric
def answer_length() -> Metric:
    """Truncated share (answers cut at max_tokens), mean answer tokens, and the slope of the
    overall score on answer length (per 100 tokens, with its 95% CI): a judge that rewards
    verbosity, or a model whose answers are cut, shows here."""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        records = _records(scores, ANSWER_KEY)
        clusters = [_cluster(s) for _, s in records]
        share, share_se = clustered_ratio_se(
            [float(r.get("truncated", 0)) for r, _ in records],
            [float(r.get("answers", 1)) for r, _ in records],
            clusters,
        )
        tokens = [math.nan if r.get("tokens") is None else float(r["tokens"]) for r, _ in records]
        mean_tokens = clustered_mean_se(tokens, clusters)[0]
        overall = []
        for _, s in records:
            v = s.score.value.get(OVERALL_KEY) if isinstance(s.score.value, dict) else None
            overall.append(math.nan if is_missing_value(v) else float(v))  # type: ignore[arg-type]
        slope, slope_se = length_slope(overall, tokens, clusters)
        return {
            "truncated_share": share,
            "truncated_share_stderr": share_se,
            "mean_answer_tokens": mean_tokens,
            "length_slope": slope,
            **_ci(slope, slope_se, "length_slope"),
        }

    return compute


@metric
def order_effect() -> Metric:
    """criteria_order=both: mean |grade in one order - grade in the reversed order| over
    criterion grades (with its 95% CI), and `order_primacy`, the mean of (grade when listed
    earlier - grade when listed later): > 0 means the judge favours criteria listed first."""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        records = _records(scores, ORDER_EFFECT_KEY)
        clusters = [_cluster(s) for _, s in records]
        mean, se = clustered_ratio_se(
            [float(r["abs_diff_sum"]) for r, _ in records],
            [float(r["pairs"]) for r, _ in records],
            clusters,
        )
        primacy, primacy_se = clustered_ratio_se(
            [float(r["primacy_sum"]) for r, _ in records],
            [float(r["primacy_pairs"]) for r, _ in records],
            clusters,
        )
        return {
            "order_effect": mean,
            **_ci(mean, se, "order_effect"),
            "order_primacy": primacy,
            **_ci(primacy, primacy_se, "order_primacy"),
        }

    return compute


def judge_noise_stats(answers: list[list[float]], clusters: list[Hashable]) -> dict[str, float]:
    """Within-answer variance of the overall over k judge calls, and its share of the total.

    `answers` holds, per graded answer (sample x epoch x grader), the overall of each call.
    `judge_variance` is the mean over answers of their unbiased within-answer variance (SE
    clustered by question); `judge_variance_share` is 1 - ICC(1) of the one-way ANOVA with
    answers as groups: the judge's share of the variance of a single judged score.
    """
    from ..stats.power import estimate_icc

    variances, var_clusters, values, groups = [], [], [], []
    for i, (calls, cluster) in enumerate(zip(answers, clusters)):
        present = [float(v) for v in calls if not is_missing_value(v)]
        if len(present) < 2:
            continue
        variances.append(float(np.var(present, ddof=1)))
        var_clusters.append(cluster)
        values.extend(present)
        groups.extend([i] * len(present))
    mean, se = clustered_mean_se(variances, var_clusters)
    icc = estimate_icc(values, groups) if len(set(groups)) >= 2 else math.nan
    return {
        "judge_variance": mean,
        **_ci(mean, se, "judge_variance"),
        "judge_variance_share": 1.0 - icc if not math.isnan(icc) else math.nan,
    }


@metric
def judge_noise() -> Metric:
    """judge_repeats=k > 1: the judge's within-answer variance, its share of the total variance
    of a judged score, and `judge_repeat_agreement` (criterion grades equal in all k calls)."""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        records = _records(scores, REPEATS_KEY)
        answers, clusters = [], []
        for r, s in records:
            for calls in r.get("overall", []):
                answers.append(list(calls))
                clusters.append(_cluster(s))
        agreement = clustered_ratio_se(
            [float(r.get("agree", 0)) for r, _ in records],
            [float(r.get("compared", 0)) for r, _ in records],
            [_cluster(s) for _, s in records],
        )[0]
        return {**judge_noise_stats(answers, clusters), "judge_repeat_agreement": agreement}

    return compute
