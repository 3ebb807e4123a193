"""Pooling training seeds: a two-level bootstrap (seeds, then questions) and the between-seed SD.

One training run is one draw of the training noise; a CI over questions alone treats it as
fixed, so a difference between two seeds of the same arm could pass for an effect. Here each
resample first draws seeds with replacement, then, inside every drawn seed, questions with
replacement (a question's samples stay together: they share its difficulty), and takes the
mean of the seed means. The between-seed SD (of the per-seed means) is reported beside the CI.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel


class PooledSummary(BaseModel):
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    between_seed_sd: float | None  # SD of the per-seed means (ddof=1); None with one seed
    seed_means: dict[str, float | None]
    n_seeds: int
    n_questions: int  # distinct questions with a value, over all seeds
    n_missing: int


def _question_means(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(sum, count) of the non-missing values per question of one seed."""
    ok = frame[frame["value"].notna()]
    g = ok.groupby("question_id")["value"]
    return g.sum().to_numpy(dtype=float), g.count().to_numpy(dtype=float)


def pooled_summary(
    per_seed: dict[int, pd.DataFrame], *, ci: float, n_resamples: int, seed: int
) -> PooledSummary:
    """Pool one arm/stage's score rows over seeds (each frame: question_id, value columns)."""
    rng = np.random.default_rng(seed)
    parts = {s: _question_means(f) for s, f in sorted(per_seed.items())}
    parts = {s: p for s, p in parts.items() if p[1].sum() > 0}
    means = {str(s): float(p[0].sum() / p[1].sum()) for s, p in parts.items()}
    n_missing = int(sum(int(f["value"].isna().sum()) for f in per_seed.values()))
    questions = set()
    for f in per_seed.values():
        questions |= set(f.loc[f["value"].notna(), "question_id"])
    if not parts:
        return PooledSummary(
            mean=None,
            ci_low=None,
            ci_high=None,
            between_seed_sd=None,
            seed_means={},
            n_seeds=0,
            n_questions=0,
            n_missing=n_missing,
        )
    keys = list(parts)
    point = float(np.mean([means[str(s)] for s in keys]))
    draws = np.empty(n_resamples)
    for r in range(n_resamples):
        chosen = rng.integers(0, len(keys), len(keys))
        seed_means = []
        for c in chosen:
            sums, counts = parts[keys[c]]
            idx = rng.integers(0, len(sums), len(sums))
            seed_means.append(sums[idx].sum() / counts[idx].sum())
        draws[r] = np.mean(seed_means)
    alpha = (1 - ci) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    sd = float(np.std([means[str(s)] for s in keys], ddof=1)) if len(keys) > 1 else None
    return PooledSummary(
        mean=point,
        ci_low=float(low),
        ci_high=float(high),
        between_seed_sd=sd,
        seed_means=means,
        n_seeds=len(keys),
        n_questions=len(questions),
        n_missing=n_missing,
    )


def stack_seeds(per_seed: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One frame of every seed's rows, sample ids prefixed by the seed: a paired comparison of
    two stacked frames pairs by (seed, sample); questions stay the clusters across seeds. The
    seeds' logs are one arm's logs of one task, so their `log` is one label naming them all
    (`caml_evals.stats.compare_frames` takes one log per task and arm)."""
    out = []
    logs = " + ".join(
        dict.fromkeys(str(x) for f in per_seed.values() if "log" in f for x in f["log"].unique())
    )
    for s, f in sorted(per_seed.items()):
        g = f.copy()
        g["sample_id"] = f"seed{s}:" + g["sample_id"].astype(str)
        if "log" in g:
            g["log"] = logs
        out.append(g)
    return pd.concat(out, ignore_index=True)
