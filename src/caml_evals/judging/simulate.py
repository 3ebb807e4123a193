"""Simulated calibration rounds with a known truth: for planning and benchmarking.

How many answers must humans rate before a judge's kappa has a CI narrower than 0.1? Simulate
with a plausible human error rate and look at the report's intervals. The benchmark
(bench/agreement.py) and several tests use the same generator.

Model: each item has a latent truth (yes with probability `base_rate`); each human rater flips
it with probability `human_error`; each judge flips it with its own error rate and, when
`judge_bias` > 0, additionally says yes on a share of true-no items (leniency). A logprob judge
reports a probability near its verdict.
"""

from __future__ import annotations

import numpy as np

from .schema import HumanRating, JudgeGrade, KeyEntry, KeySource, RatingKey


def simulate(
    n_answers: int = 100,
    n_dimensions: int = 3,
    n_raters: int = 3,
    human_error: float = 0.1,
    judge_errors: dict[str, float] | None = None,
    judge_bias: float = 0.0,
    base_rate: float = 0.5,
    rate_share: float = 1.0,
    seed: int = 0,
) -> tuple[RatingKey, list[HumanRating]]:
    """A key (one judging, one grader per `judge_errors` entry) and human ratings.

    `rate_share` < 1 leaves each (rater, item) unrated with probability 1 - rate_share
    (missing values, as in real rounds where raters do not finish).
    """
    rng = np.random.default_rng(seed)
    judge_errors = judge_errors or {"good": 0.1, "poor": 0.3}
    dims = [f"dim{d:02d}" for d in range(n_dimensions)]
    n = n_answers * n_dimensions
    truth = rng.random(n) < base_rate
    items: dict[str, KeyEntry] = {}
    judge_values = {}
    for name, err in judge_errors.items():
        verdict = truth ^ (rng.random(n) < err)
        verdict |= (~truth) & (rng.random(n) < judge_bias)
        if name.endswith("logprob"):
            conf = rng.uniform(0.5, 1.0, n)
            judge_values[name] = np.where(verdict, conf, 1 - conf)
        else:
            judge_values[name] = verdict.astype(float)
    ratings: list[HumanRating] = []
    for j in range(n):
        a, d = divmod(j, n_dimensions)
        item_id = f"i{j:07d}"
        items[item_id] = KeyEntry(
            item_id=item_id,
            unit_id=f"u{a:06d}",
            sample_id=f"s{a}",
            epoch=1,
            dimension=dims[d],
            content_hash=f"h{a}",
            sources=[
                KeySource(
                    label="sim",
                    log="simulated",
                    task="sim",
                    model="sim/model",
                    scorer="rubric_scorer",
                    mode="per_dimension",
                    logprobs=any(k.endswith("logprob") for k in judge_errors),
                    grades={k: JudgeGrade(value=float(v[j])) for k, v in judge_values.items()},
                )
            ],
        )
    flips = rng.random((n_raters, n)) < human_error
    rated = rng.random((n_raters, n)) < rate_share
    for r in range(n_raters):
        for j in np.nonzero(rated[r])[0]:
            ratings.append(
                HumanRating(
                    item_id=f"i{j:07d}", rater=f"rater{r}", value=float(truth[j] ^ flips[r, j])
                )
            )
    key = RatingKey(set_id="sim", seed=seed, created="", logs=["simulated"], items=items)
    return key, ratings
