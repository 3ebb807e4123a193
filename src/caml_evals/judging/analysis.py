"""How far can the judge be trusted? Every agreement statistic, per scope, with bootstrap CIs.

Scopes: `overall` (all items pooled) and each dimension (all its criteria: a dimension whose
guiding question was expanded with several variable values has one item per value). Items are
(answer, criterion) pairs. For each scope:

* the **human ceiling**: how well humans agree with each other (pairwise agreement, the mean
  pairwise Cohen's kappa over pairs of human raters, Krippendorff's alpha among humans) — a
  judge cannot be expected to agree with humans better than they agree among themselves;
* for each **judge variant**: agreement, Cohen's kappa and quadratic-weighted kappa with the
  human majority; pairwise agreement and mean pairwise Cohen's kappa of the judge with each
  human rater — the SAME statistics as the ceiling's, only over (judge, human) pairs instead of
  (human, human) pairs; Krippendorff's alpha with the judge added as one more rater (compare
  with the humans-only alpha); Spearman and Kendall with the human mean; mean bias (judge minus
  human mean) and mean squared error; the confusion matrix.

CIs resample clusters (answers) with replacement: every scope keeps the items of one answer
together (its dimensions overall, its expanded criteria within a dimension). All variants and
the ceiling are evaluated on the SAME replicates, so their intervals are paired.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import metrics as M
from .align import AlignedRatings, AlignError, human_means, majority_codes

REPORT_FORMAT = "caml-evals/judge-agreement/v1"

CEILING_METRICS = (
    "pairwise_agreement",
    "pairwise_kappa",
    "alpha_nominal",
    "alpha_ordinal",
    "alpha_interval",
)
VARIANT_METRICS = (
    "agreement",
    "kappa",
    "weighted_kappa",
    "pairwise_agreement",
    "pairwise_kappa",
    "alpha_nominal",
    "alpha_ordinal",
    "alpha_interval",
    "spearman",
    "kendall",
    "bias",
    "mse",
)

METRIC_HELP = {
    "agreement": "share of items where the judge (snapped to the scale) equals the human majority",
    "kappa": "Cohen's kappa, judge vs human majority (chance-corrected agreement)",
    "weighted_kappa": "Cohen's kappa with quadratic weights (ordinal scales; equals kappa on yes/no)",
    "pairwise_agreement": (
        "share of agreeing rating pairs on the same item (ceiling: human with human; variant: "
        "judge with each human)"
    ),
    "pairwise_kappa": (
        "mean of Cohen's kappas, one per pair of raters on the items both rated, weighted by "
        "those items (ceiling: pairs of humans; variant: the judge with each human); the same "
        "statistic for both, so they compare directly"
    ),
    "alpha_nominal": "Krippendorff's alpha, nominal (ceiling: humans only; variant: humans + judge)",
    "alpha_ordinal": "Krippendorff's alpha, ordinal",
    "alpha_interval": "Krippendorff's alpha, interval (raw judge values, e.g. P(YES))",
    "spearman": "Spearman's rho, raw judge value vs human mean",
    "kendall": "Kendall's tau-b, raw judge value vs human mean",
    "bias": "mean of (judge value - human mean): > 0 means the judge is more generous",
    "mse": "mean squared (judge value - human mean); the Brier score against the human mean",
}


@dataclass
class _Human:
    counts: np.ndarray
    m: np.ndarray
    majority: np.ndarray
    mean: np.ndarray
    codes: np.ndarray  # (R, n) each rater's code, -1 = not rated
    pairs: list[tuple[int, int]]  # rater pairs (r < s) that share at least one item
    coinc: np.ndarray
    interval: np.ndarray


def _interval_from_moments(m: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    pairable = m >= 2
    within = np.where(pairable, 2.0 * (m * s2 - s1 * s1) / np.where(pairable, m - 1, 1.0), 0.0)
    keep = pairable.astype(float)
    return np.stack([m * keep, s1 * keep, s2 * keep, within], axis=1)


def _human(data: AlignedRatings) -> _Human:
    counts = data.counts
    m = counts.sum(axis=1)
    s = data.scale
    codes = data.snap(data.rater_values)  # human values are scale values: exact codes
    rated = codes >= 0
    shared = rated.astype(float) @ rated.T.astype(float)
    R = codes.shape[0]
    return _Human(
        counts=counts,
        m=m,
        majority=majority_codes(counts),
        mean=human_means(counts, s),
        codes=codes.reshape(R, -1),
        pairs=[(r, q) for r in range(R) for q in range(r + 1, R) if shared[r, q] > 0],
        coinc=M.unit_coincidences(counts),
        interval=_interval_from_moments(m, counts @ s, counts @ (s * s)),
    )


class _Features:
    """Per-item feature blocks stacked into ONE matrix, so each replicate chunk costs a single
    `W @ F` pass over the weights (the bootstrap is memory-bound: reading W once, not once per
    statistic, is what makes it fast)."""

    def __init__(self) -> None:
        self._blocks: list[np.ndarray] = []
        self._slices: dict[str, slice] = {}
        self._width = 0
        self.F: np.ndarray | None = None

    def add(self, name: str, block: np.ndarray) -> None:
        block = block.reshape(block.shape[0], -1)
        self._slices[name] = slice(self._width, self._width + block.shape[1])
        self._width += block.shape[1]
        self._blocks.append(block)

    def build(self) -> None:
        self.F = np.hstack(self._blocks)
        self._blocks = []

    def sums(self, W: np.ndarray) -> dict[str, np.ndarray]:
        T = W @ self.F
        return {name: T[:, sl] for name, sl in self._slices.items()}


def _ceiling_features(f: _Features, h: _Human, k: int) -> None:
    first = np.array([r for r, _ in h.pairs], dtype=np.int64)
    second = np.array([q for _, q in h.pairs], dtype=np.int64)
    f.add("h.pairs", M.pair_cells(h.codes[first], h.codes[second], k))
    f.add("h.coinc", h.coinc)
    f.add("h.interval", h.interval)


def _pair_tables(T: np.ndarray, k: int) -> np.ndarray:
    """Summed pair cells (B, P*k*k) -> confusion matrix per pair (B, P, k, k)."""
    return T.reshape(T.shape[0], T.shape[1] // (k * k), k, k)


def _ceiling(S: dict[str, np.ndarray], scale: np.ndarray) -> dict[str, np.ndarray]:
    k = scale.size
    P = _pair_tables(S["h.pairs"], k)
    O = S["h.coinc"].reshape(-1, k, k)
    return {
        "pairwise_agreement": M.agreement_from_confusion(P.sum(axis=1)),
        "pairwise_kappa": M.mean_pairwise_kappa(P),
        "alpha_nominal": M.alpha_from_coincidence(O, "nominal", scale),
        "alpha_ordinal": M.alpha_from_coincidence(O, "ordinal", scale),
        "alpha_interval": M.alpha_interval_from_sums(S["h.interval"]),
    }


@dataclass
class _Judge:
    name: str
    raw: np.ndarray


def _judge_features(
    f: _Features, name: str, values: np.ndarray, h: _Human, data: AlignedRatings
) -> _Judge:
    k = data.scale.size
    n = values.size
    code = data.snap(values)
    onehot = np.zeros((n, k))
    ok = code >= 0
    onehot[np.nonzero(ok)[0], code[ok]] = 1.0
    # confusion cell (human majority x judge), one-hot
    conf = np.zeros((n, k * k))
    both = ok & (h.majority >= 0)
    conf[np.nonzero(both)[0], h.majority[both] * k + code[both]] = 1.0
    f.add(f"{name}.conf", conf)
    # (each human, judge) pair: rows = that human, columns = the judge
    f.add(f"{name}.pairs", M.pair_cells(h.codes, np.broadcast_to(code, h.codes.shape), k))
    f.add(f"{name}.coinc", M.unit_coincidences(h.counts + onehot))
    raw0 = np.where(ok, values, 0.0)
    f.add(
        f"{name}.interval",
        _interval_from_moments(
            h.m + ok, h.counts @ data.scale + raw0, h.counts @ (data.scale**2) + raw0 * raw0
        ),
    )
    diff = values - h.mean
    dok = ~np.isnan(diff)
    d0 = np.where(dok, diff, 0.0)
    f.add(f"{name}.diff", np.stack([d0, d0 * d0, dok.astype(float)], axis=1))
    return _Judge(name, values)


def _variant(
    W: np.ndarray, S: dict[str, np.ndarray], j: _Judge, h: _Human, scale: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    k = scale.size
    C = S[f"{j.name}.conf"].reshape(-1, k, k)  # rows: human majority, columns: judge
    P = _pair_tables(S[f"{j.name}.pairs"], k)
    O = S[f"{j.name}.coinc"].reshape(-1, k, k)
    d = S[f"{j.name}.diff"]
    rho, tau = M.rank_correlations(W, j.raw, h.mean)
    out = {
        "agreement": M.agreement_from_confusion(C),
        "kappa": M.kappa_from_confusion(C),
        "weighted_kappa": M.kappa_from_confusion(C, "quadratic"),
        "pairwise_agreement": M.agreement_from_confusion(P.sum(axis=1)),
        "pairwise_kappa": M.mean_pairwise_kappa(P),
        "alpha_nominal": M.alpha_from_coincidence(O, "nominal", scale),
        "alpha_ordinal": M.alpha_from_coincidence(O, "ordinal", scale),
        "alpha_interval": M.alpha_interval_from_sums(S[f"{j.name}.interval"]),
        "spearman": rho,
        "kendall": tau,
        "bias": M._div(d[:, 0], d[:, 2]),
        "mse": M._div(d[:, 1], d[:, 2]),
    }
    return out, C


def summarise(point: np.ndarray, reps: np.ndarray, ci: float) -> dict[str, float | None]:
    """One report cell: the point estimate, the percentile interval of the finite replicates,
    and the share of replicates where the statistic was undefined (NaN: no variation)."""

    def f(x: float) -> float | None:
        return None if x is None or not np.isfinite(x) else round(float(x), 6)

    finite = reps[np.isfinite(reps)]
    lo = hi = None
    if finite.size:
        lo, hi = np.quantile(finite, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return {
        "value": f(point[0]),
        "lo": f(lo) if lo is not None else None,
        "hi": f(hi) if hi is not None else None,
        "undefined_share": round(1.0 - finite.size / max(reps.size, 1), 4),
    }


def analyse_scope(
    data: AlignedRatings, n_resamples: int, rng: np.random.Generator, ci: float, chunk: int = 100
) -> dict:
    """Ceiling and every variant on one scope (a subset of items)."""
    h = _human(data)
    features = _Features()
    _ceiling_features(features, h, data.scale.size)
    judges = {
        name: _judge_features(features, name, v.values, h, data)
        for name, v in data.variants.items()
    }
    features.build()

    def evaluate(W: np.ndarray):
        S = features.sums(W)
        return _ceiling(S, data.scale), {
            name: _variant(W, S, j, h, data.scale) for name, j in judges.items()
        }

    ceil_point, var_point = evaluate(M.ones_weights(len(data.item_ids)))
    ceil_reps: dict[str, list[np.ndarray]] = {m: [] for m in CEILING_METRICS}
    var_reps: dict[str, dict[str, list[np.ndarray]]] = {
        n: {m: [] for m in VARIANT_METRICS} for n in judges
    }
    if n_resamples > 0 and len(data.item_ids) > 0:
        for W in M.bootstrap_weights(data.clusters, n_resamples, rng, chunk):
            ceil, var = evaluate(W)
            for m, arr in ceil.items():
                ceil_reps[m].append(arr)
            for name, (stats, _) in var.items():
                for m, arr in stats.items():
                    var_reps[name][m].append(arr)

    def reps(lst: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(lst) if lst else np.array([])

    scope = {
        "ceiling": {
            "n_items": int((h.m > 0).sum()),
            "n_items_multi": int((h.m >= 2).sum()),
            "n_ratings": int(h.m.sum()),
            "metrics": {
                m: summarise(ceil_point[m], reps(ceil_reps[m]), ci) for m in CEILING_METRICS
            },
        },
        "variants": {},
    }
    for name, j in judges.items():
        stats, C = var_point[name]
        graded = ~np.isnan(j.raw)
        scope["variants"][name] = {
            "n_items": int((graded & (h.m > 0)).sum()),
            "n_judge_missing": int((~graded).sum()),
            "n_majority_ties": int(((h.m > 0) & (h.majority < 0)).sum()),
            "confusion": C[0].astype(int).tolist(),
            "metrics": {
                m: summarise(stats[m], reps(var_reps[name][m]), ci) for m in VARIANT_METRICS
            },
        }
    return scope


def rater_table(data: AlignedRatings) -> list[dict]:
    """Each rater: how much they rated and how often they match the majority of the OTHERS.

    A rater far below the rest may have misread the rubric; worth a look before trusting them.
    """
    counts = data.counts
    out = []
    for r, name in enumerate(data.raters):
        row = data.rater_values[r]
        rated = ~np.isnan(row)
        own = data.snap(np.where(rated, row, np.nan))
        others = counts.copy()
        idx = np.nonzero(rated)[0]
        others[idx, own[idx]] -= 1
        maj = majority_codes(others)
        ok = rated & (maj >= 0)
        out.append(
            {
                "rater": name,
                "n_ratings": int(rated.sum()),
                "yes_share": round(float(np.mean(row[rated] >= 0.5)), 4) if rated.any() else None,
                "n_compared": int(ok.sum()),
                "agreement_with_others": round(float(np.mean(own[ok] == maj[ok])), 4)
                if ok.any()
                else None,
            }
        )
    return out


def analyse(data: AlignedRatings, n_resamples: int = 1000, seed: int = 0, ci: float = 0.95) -> dict:
    """The whole agreement report as a JSON-ready dict."""
    if not data.item_ids:
        raise AlignError("no rated items: nothing to compare (are the ratings for this key?)")
    rng = np.random.default_rng(seed)
    dims = sorted(set(data.dimensions.tolist()))
    scopes = {"overall": analyse_scope(data, n_resamples, rng, ci)}
    for d in dims:
        scopes[d] = analyse_scope(data.subset(data.dimensions == d), n_resamples, rng, ci)
    return {
        "format": REPORT_FORMAT,
        "settings": {
            "n_resamples": n_resamples,
            "seed": seed,
            "ci": ci,
            "bootstrap": "clusters = answers",
        },
        "data": {
            **data.notes,
            "n_items": len(data.item_ids),
            "n_answers": int(np.unique(data.clusters).size),
            "raters": data.raters,
            "scale": data.scale.tolist(),
            "dimensions": dims,
            "n_criteria": len(set(data.criteria.tolist())),
        },
        "metric_help": METRIC_HELP,
        "variants": [v.info() for v in data.variants.values()],
        "raters": rater_table(data),
        "scopes": scopes,
    }
