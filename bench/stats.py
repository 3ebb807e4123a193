"""Benchmark: caml_evals.stats paired bootstrap + sign-flip permutation test vs scipy.stats.

Workload (default): 5,000 questions x 5 epochs x 13 rubric dimensions, 10,000 resamples, a paired
comparison of two models. Ours takes the raw (questions x epochs) scores with question ids and
does everything `compare_paired_matrix` does (cluster sums, clustered SE, percentile bootstrap CI
over questions, sign-flip test, effect sizes) for all 13 dimensions. scipy gets its best shot:
the per-question mean differences (the right input for a question-level bootstrap, since scipy
has no clusters), `vectorized=True`, all 13 dimensions in one call along an axis, and a batch
size that keeps its memory near ours.

Equal results: the bootstrap stream is the same generator (numpy default_rng([seed, 1])), so the
CIs match to rounding; the permutation tests use different random signs, so their p-values are
compared in units of their Monte Carlo error.

Single-threaded by default (OMP/OpenBLAS threads = 1, set before numpy loads) so the ratio
measures the algorithm, not the core count; pass --threads N to change it.

    python bench/stats.py            # full size (~10 s of scipy, <1 s ours; see docs/stats.md)
    python bench/stats.py --quick    # 1,000 questions x 3 epochs x 13, 2,000 resamples
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __name__ == "__main__":  # thread count must be fixed before numpy/BLAS load
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)

import numpy as np
import scipy.stats as ss

from caml_evals.stats import compare_paired_matrix


def make_data(
    n_questions: int, n_epochs: int, n_dims: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary rubric grades: each question has its own difficulty, B is a bit better on some
    dimensions; epochs are noisy re-grades of the same question."""
    rng = np.random.default_rng(seed)
    p_a = rng.beta(2, 2, size=(n_questions, 1, n_dims))
    lift = np.linspace(-0.01, 0.04, n_dims)[None, None, :]
    p_b = np.clip(p_a + lift + rng.normal(0, 0.05, size=(n_questions, 1, n_dims)), 0, 1)
    a = (rng.random((n_questions, n_epochs, n_dims)) < p_a).astype(float)
    b = (rng.random((n_questions, n_epochs, n_dims)) < p_b).astype(float)
    clusters = np.repeat(np.arange(n_questions), n_epochs)
    return a.reshape(-1, n_dims), b.reshape(-1, n_dims), clusters


def run_ours(a, b, clusters, n_resamples, seed):
    start = time.perf_counter()
    rows = compare_paired_matrix(a, b, clusters, n_resamples=n_resamples, seed=seed)
    return time.perf_counter() - start, rows


def run_scipy(a, b, n_questions, n_epochs, n_resamples, seed, batch):
    start = time.perf_counter()
    d = (b - a).reshape(n_questions, n_epochs, -1).mean(axis=1).T  # dims x questions
    boot = ss.bootstrap(
        (d,),
        np.mean,
        axis=-1,
        vectorized=True,
        n_resamples=n_resamples,
        method="percentile",
        batch=batch,
        rng=np.random.default_rng([seed, 1]),
    )
    t_boot = time.perf_counter() - start
    perm = ss.permutation_test(
        (d,),
        np.mean,
        axis=-1,
        vectorized=True,
        permutation_type="samples",
        n_resamples=n_resamples,
        batch=batch,
        rng=np.random.default_rng(seed + 1000),
    )
    total = time.perf_counter() - start
    return total, t_boot, total - t_boot, boot, perm


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small size for a smoke run")
    parser.add_argument("--questions", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--dims", type=int, default=13)
    parser.add_argument("--resamples", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (default 1)")
    parser.add_argument(
        "--scipy-batch", type=int, default=500, help="scipy resamples per batch (memory)"
    )
    args = parser.parse_args()
    n_q = args.questions or (1_000 if args.quick else 5_000)
    n_e = args.epochs or (3 if args.quick else 5)
    n_r = args.resamples or (2_000 if args.quick else 10_000)
    a, b, clusters = make_data(n_q, n_e, args.dims, args.seed)
    print(f"data: {n_q} questions x {n_e} epochs x {args.dims} dimensions; {n_r} resamples")

    run_ours(a[:50], b[:50], clusters[:50], 10, args.seed)  # import/warm-up, not timed
    t_ours, rows = run_ours(a, b, clusters, n_r, args.seed)
    t_scipy, t_boot, t_perm, boot, perm = run_scipy(
        a, b, n_q, n_e, n_r, args.seed, args.scipy_batch
    )

    ours_low = np.array([r.ci_low for r in rows])
    ours_high = np.array([r.ci_high for r in rows])
    ours_p = np.array([r.p_value for r in rows])
    ours_diff = np.array([r.diff for r in rows])
    ci_gap = max(
        np.max(np.abs(ours_low - boot.confidence_interval.low)),
        np.max(np.abs(ours_high - boot.confidence_interval.high)),
    )
    # two-sided p = 2 x one tail: its Monte Carlo SD is 2 sqrt(q(1-q)/n) with q = p/2
    q = np.clip(np.maximum(ours_p, perm.pvalue) / 2, 1 / n_r, 0.5)
    p_mc_error = 2 * np.sqrt(q * (1 - q) / n_r)
    p_gap_in_mc_units = np.max(np.abs(ours_p - perm.pvalue) / (np.sqrt(2) * p_mc_error))

    print(
        f"ours  (caml_evals.stats.compare_paired_matrix): {t_ours:8.2f} s  (CI + p-values + SE for all dims)"
    )
    print(f"scipy (bootstrap {t_boot:.2f} s + permutation_test {t_perm:.2f} s):  {t_scipy:8.2f} s")
    print(f"ratio scipy / ours: {t_scipy / t_ours:.1f}x")
    print(f"max |diff - scipy statistic|: {np.max(np.abs(ours_diff - perm.statistic)):.2e}")
    print(f"max |CI endpoint - scipy|:   {ci_gap:.2e} (same bootstrap stream)")
    print(
        f"max over dims of |p - scipy p| / MC sd of the gap: {p_gap_in_mc_units:.2f} "
        "(independent sign draws: each ~|N(0,1)|, so the max of 13 is usually < 3)"
    )
    print("dimension  diff      CI (ours)            CI (scipy)           p (ours)  p (scipy)")
    for k in range(args.dims):
        print(
            f"{k:9d}  {ours_diff[k]:+.4f}  [{ours_low[k]:+.4f}, {ours_high[k]:+.4f}]  "
            f"[{boot.confidence_interval.low[k]:+.4f}, {boot.confidence_interval.high[k]:+.4f}]  "
            f"{ours_p[k]:.4f}    {perm.pvalue[k]:.4f}"
        )


if __name__ == "__main__":
    main()
