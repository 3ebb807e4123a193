"""NaN-tolerant Inspect metrics for dict-valued rubric scores, with clustered standard errors.

Missing grades are NaN in the score dict; every metric here averages only present values, so an
unparseable judge reply lowers the sample count (and raises `missing_rate`) but never the score.
The cluster of a sample is its `cluster_id` metadata when the task sets one (AHB with
`-T cluster_by=source`: every translation of one source question is one cluster), else its
`question_id`, falling back to the sample id; epochs are already one cluster because Inspect
reduces them per sample before metrics run.

The dimension-normalised average weights each dimension by the `weight` its rubric criteria
carry (AHB's `default_weighting` column; 1 elsewhere), as upstream ANIMA does. `overall_mean` and
`dimension_normalized_avg` are the upstream metric names, reported beside ours so a lab can read
the published number under its published name.

`missing_rate` is the share of all (criterion x grader) grades that are missing: summed missing
and expected counts from the score metadata, a ratio of sums (a sample with many criteria weighs
more than one with a single criterion). A sample with nothing to grade (no usable dimension tag)
expects no grade, so it cannot move `missing_rate`; it is counted in `samples_without_rubric`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import numpy as np
from inspect_ai.scorer import Metric, SampleScore, metric

from .clustered import clustered_mean_se, clustered_ratio_se, jackknife_se
from .grades import (
    EXPECTED_COUNT_KEY,
    GRADER_KEY_PREFIX,
    MISSING_COUNT_KEY,
    MISSING_RATE_KEY,
    OVERALL_KEY,
    dimension_keys,
    is_missing_value,
    weighted_mean,
)
from .judge_checks import answer_length, judge_noise, order_effect

CLUSTER_KEY = "cluster_id"  # sample metadata: the cluster of a sample in every SE (optional)


def cluster_of(sample: SampleScore) -> Hashable:
    meta = sample.sample_metadata or {}
    if meta.get(CLUSTER_KEY) is not None:
        return meta[CLUSTER_KEY]
    return meta.get("question_id", sample.sample_id)


def dimension_weights(scores: list[SampleScore]) -> dict[str, float]:
    """Each dimension's weight, from the rubric criteria in the samples' metadata (default 1)."""
    weights: dict[str, float] = {}
    for s in scores:
        for c in (s.sample_metadata or {}).get("rubric") or []:
            if isinstance(c, dict) and "name" in c:
                weights.setdefault(c["name"], float(c.get("weight", 1.0)))
    return weights


def _values(scores: list[SampleScore], key: str) -> tuple[list[float], list[Hashable]]:
    values, clusters = [], []
    for s in scores:
        value = s.score.value
        if not isinstance(value, dict) or key not in value:
            continue
        v = value[key]
        values.append(math.nan if is_missing_value(v) else float(v))
        clusters.append(cluster_of(s))
    return values, clusters


def _keys(scores: list[SampleScore], predicate) -> list[str]:
    keys: dict[str, None] = {}
    for s in scores:
        if isinstance(s.score.value, dict):
            for k in s.score.value:
                if predicate(k):
                    keys.setdefault(k, None)
    return sorted(keys)


def _dimension_names(scores: list[SampleScore]) -> list[str]:
    names: dict[str, None] = {}
    for s in scores:
        if isinstance(s.score.value, dict):
            for k in dimension_keys(s.score.value):
                names.setdefault(k, None)
    return sorted(names)


@metric(name="overall")
def overall_mean() -> Metric:
    """Mean of per-sample overall scores (each the mean of its graded dimensions)."""

    def compute(scores: list[SampleScore]) -> float:
        return clustered_mean_se(*_values(scores, OVERALL_KEY))[0]

    return compute


@metric(name="overall_mean")
def overall_mean_published() -> Metric:
    """`overall` under the upstream ANIMA / MORU metric name (the same number)."""

    def compute(scores: list[SampleScore]) -> float:
        return clustered_mean_se(*_values(scores, OVERALL_KEY))[0]

    return compute


@metric(name="overall_stderr")
def overall_stderr() -> Metric:
    """Cluster-robust standard error of `overall`."""

    def compute(scores: list[SampleScore]) -> float:
        return clustered_mean_se(*_values(scores, OVERALL_KEY))[1]

    return compute


@metric
def dimension_means() -> Metric:
    """Mean per dimension over the samples tagged with it (present grades only)."""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        return {d: clustered_mean_se(*_values(scores, d))[0] for d in _dimension_names(scores)}

    return compute


@metric
def dimension_stderrs() -> Metric:
    """Cluster-robust SE per dimension, keyed `<dimension> stderr`."""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        return {
            f"{d} stderr": clustered_mean_se(*_values(scores, d))[1]
            for d in _dimension_names(scores)
        }

    return compute


def _normalised_average(
    scores: list[SampleScore], dims: list[str], mask: np.ndarray, weights: dict[str, float]
) -> float:
    means: dict[str, float] = {}
    for d in dims:
        values = [
            float(s.score.value[d])
            for s, keep in zip(scores, mask)
            if keep
            and isinstance(s.score.value, dict)
            and d in s.score.value
            and not is_missing_value(s.score.value[d])
        ]
        if values:
            means[d] = sum(values) / len(values)
    return weighted_mean(means, weights)


def _dimension_normalised(scores: list[SampleScore]) -> float:
    return _normalised_average(
        scores, _dimension_names(scores), np.ones(len(scores), bool), dimension_weights(scores)
    )


@metric
def dimension_normalised_average() -> Metric:
    """Weighted mean of the per-dimension means: a dimension weighs its weight (1 unless the
    table says otherwise), however often it is tagged."""

    def compute(scores: list[SampleScore]) -> float:
        return _dimension_normalised(scores)

    return compute


@metric(name="dimension_normalized_avg")
def dimension_normalized_avg() -> Metric:
    """`dimension_normalised_average` under the upstream ANIMA metric name (the same number)."""

    def compute(scores: list[SampleScore]) -> float:  # its own function: Inspect names it
        return _dimension_normalised(scores)

    return compute


@metric
def dimension_normalised_average_stderr() -> Metric:
    """Leave-one-question-out jackknife SE of the dimension-normalised average."""

    def compute(scores: list[SampleScore]) -> float:
        dims, weights = _dimension_names(scores), dimension_weights(scores)
        return jackknife_se(
            lambda mask: _normalised_average(scores, dims, mask, weights),
            [cluster_of(s) for s in scores],
        )

    return compute


def _grade_counts(scores: list[SampleScore]) -> tuple[list[float], list[float], list[Hashable]]:
    """(missing, expected, cluster) per sample, from the score metadata counts.

    A score without the counts (reduced by a reducer other than `nan_mean`) falls back to its
    `missing_rate` value with weight 1.
    """
    missing, expected, clusters = [], [], []
    for s in scores:
        meta = s.score.metadata or {}
        if MISSING_COUNT_KEY in meta and EXPECTED_COUNT_KEY in meta:
            m, e = float(meta[MISSING_COUNT_KEY]), float(meta[EXPECTED_COUNT_KEY])
        elif isinstance(s.score.value, dict) and not is_missing_value(
            s.score.value.get(MISSING_RATE_KEY)
        ):
            m, e = float(s.score.value[MISSING_RATE_KEY]), 1.0
        else:
            continue
        missing.append(m)
        expected.append(e)
        clusters.append(cluster_of(s))
    return missing, expected, clusters


@metric
def missing_rate() -> Metric:
    """Share of (criterion x grader) grades that are missing: unparseable replies, grader errors."""

    def compute(scores: list[SampleScore]) -> float:
        return clustered_ratio_se(*_grade_counts(scores))[0]

    return compute


@metric
def missing_rate_stderr() -> Metric:
    """Cluster-robust SE of `missing_rate` (clusters = questions; a ratio-estimator SE)."""

    def compute(scores: list[SampleScore]) -> float:
        return clustered_ratio_se(*_grade_counts(scores))[1]

    return compute


@metric
def samples_without_rubric() -> Metric:
    """Samples with nothing to grade (no usable dimension tag): NaN overall, not in missing_rate."""

    def compute(scores: list[SampleScore]) -> int:
        return sum(1 for s in scores if (s.score.metadata or {}).get(EXPECTED_COUNT_KEY, None) == 0)

    return compute


@metric
def grader_means() -> Metric:
    """Overall score per grader (only when several graders were used)."""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        keys = _keys(scores, lambda k: k.startswith(GRADER_KEY_PREFIX))
        return {k: clustered_mean_se(*_values(scores, k))[0] for k in keys}

    return compute


@metric
def group_means(key: str) -> Metric:
    """Overall mean (and SE) per value of a sample metadata field, e.g. language or source."""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        groups: dict[str, list[SampleScore]] = {}
        for s in scores:
            group = (s.sample_metadata or {}).get(key)
            groups.setdefault(str(group if group is not None else "unknown"), []).append(s)
        result: dict[str, float] = {}
        for group, members in sorted(groups.items()):
            mean, se = clustered_mean_se(*_values(members, OVERALL_KEY))
            result[f"{key}={group}"] = mean
            result[f"{key}={group} stderr"] = se
        return result

    return compute


def rubric_metrics(
    group_by: list[str] | tuple[str, ...] = (),
    *,
    order_effects: bool = False,
    judge_repeats: int = 1,
) -> list[Metric]:
    """The metric set of every rubric benchmark; `group_by` adds per-group overall means.

    Every set reports answer length and truncation (`answer_length`); `order_effects` adds the
    order effect of criteria_order=both, `judge_repeats` > 1 the judge-noise metrics.
    """
    metrics: list[Metric] = [
        overall_mean(),
        overall_mean_published(),
        overall_stderr(),
        dimension_normalised_average(),
        dimension_normalized_avg(),
        dimension_normalised_average_stderr(),
        missing_rate(),
        missing_rate_stderr(),
        samples_without_rubric(),
        dimension_means(),
        dimension_stderrs(),
        grader_means(),
        answer_length(),
    ]
    if order_effects:
        metrics.append(order_effect())
    if judge_repeats > 1:
        metrics.append(judge_noise())
    metrics.extend(group_means(key) for key in group_by)
    return metrics
