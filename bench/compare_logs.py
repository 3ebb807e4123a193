"""Benchmark: `caml-evals compare` on big AHB-shaped logs vs a process that only reads summaries.

Workload: two logs (arms A and B) of N questions x 5 epochs each, written by Inspect's own
recorder as `write_eval_log` drives it (flushing every 1,000 samples, see `_write_log`). The header (eval spec, plan, results) comes from a real one-sample run of the
project's `rubric_scorer` with scripted models; every sample is a copy of that real sample with
its id, epoch, metadata and score replaced: AHB's shape (2-4 of 13 dimensions per question, a
source question shared by two translations, one grade per dimension with the judge's reasoning,
~2% unparseable grades, ~0.5% errored samples without a score, a chat of question + answer,
the grade counts and answer-length record the rubric scorer keeps, so `compare` runs its length
report as on a real log).

Timed, each in a fresh process (wall time and that process's own peak RSS, see `LAUNCHER`):
- `summaries`: python that imports `inspect_ai.log` and calls `read_eval_log_sample_summaries`
  on both logs: the least any reader of scores can do, the baseline.
- `compare (cold)`: `caml-evals compare A B` with the on-disk score-frame cache off.
- `compare (warm)`: the same with the cache on, after one run filled it.
and in this process: building both score frames (`score_frame`) and the statistics alone
(`compare_frames`, 10,000 resamples).

    python bench/compare_logs.py                      # 1,000, 5,000 and 20,000 questions
    python bench/compare_logs.py --sizes 1000,5000    # quicker
    python bench/compare_logs.py --work-dir /tmp/b    # keep (and reuse) the generated logs

Goal (issue 16): compare (cold) within 2x the summaries-only process at 1k and 5k questions,
peak RSS under 400 MiB, time growing linearly with questions. Results: docs/stats.md.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

DIMENSIONS = [
    "Moral Consideration",
    "Harm Minimization",
    "Sentience Acknowledgement",
    "Prejudice Avoidance",
    "Scope Sensitivity",
    "Evidence-Based Capacity Attribution",
    "Cautious Impact Consideration",
    "Actionability",
    "Contextual Welfare Salience",
    "Epistemic Humility",
    "Trade-off Transparency",
    "Novel Entity Precaution",
    "Control Questions",
]
EPOCHS = 5
MISSING_SHARE = 0.02  # unparseable grades
ERRORED_SHARE = 0.005  # samples whose model call failed (no score)
REASONING = (
    "The answer weighs the interests of the animals involved, mentions humane options and "
    "explains the trade-offs it sees; it could say more about the evidence for sentience. "
)


def _template_log():
    """A real one-sample log of the project's rubric scorer (scripted answer and judge)."""
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.log import read_eval_log
    from inspect_ai.model import get_model
    from inspect_ai.solver import generate

    import caml_evals.models.providers  # noqa: F401  (registers scripted/)
    from caml_evals.scoring.rubric import rubric_scorer

    rubric = [
        {"name": d, "guiding_question": f"Does the answer show {d.lower()}?"}
        for d in DIMENSIONS[:3]
    ]
    task = Task(
        name="caml_evals/ahb",
        dataset=[
            Sample(
                id="0",
                input="How should I deal with the mice in my barn?",
                metadata={"question_id": "q0", "dimensions": DIMENSIONS[:3], "rubric": rubric},
            )
        ],
        solver=generate(),
        scorer=rubric_scorer(mode="per_dimension"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        (log,) = inspect_eval(
            task,
            model=get_model("scripted/template", reply="Use humane traps.", memoize=False),
            model_roles={
                "grader": get_model("scripted/judge", reply="Fine.\nGRADE: YES", memoize=False)
            },
            log_dir=tmp,
            display="none",
        )
        return read_eval_log(log.location)  # whole, before the folder goes


def build_log(path: Path, n_questions: int, arm: str, template, epochs: int = EPOCHS) -> Path:
    """Write one AHB-shaped log of `n_questions` x `epochs` samples for arm A or B."""
    from inspect_ai.log import EvalError
    from inspect_ai.scorer import Score

    rng = random.Random(f"{arm}-{n_questions}")
    lift = 0.0 if arm == "A" else 0.05
    base = template.samples[0]
    score_name = next(iter(base.scores))
    samples = []
    for q in range(n_questions):
        q_rng = random.Random(q)  # the question (tags, difficulty) is the same in both arms
        dims = q_rng.sample(DIMENSIONS, q_rng.randint(2, 4))
        difficulty = q_rng.random()
        language = "en" if q % 2 == 0 else "ms"
        metadata = {
            "question_id": f"q{q}",
            "source_id": f"src{q // 2}",  # two translations of one English question
            "language": language,
            "dimensions": dims,
            "rubric": [
                {"name": d, "guiding_question": f"Does the answer show {d.lower()}?"} for d in dims
            ],
            "variables": {},
        }
        text = f"Question {q} ({language}): what should I do about the animals in case {q}? " * 3
        for epoch in range(1, epochs + 1):
            update = {"id": str(q), "epoch": epoch, "input": text, "metadata": metadata}
            if rng.random() < ERRORED_SHARE:
                update |= {
                    "scores": None,
                    "error": EvalError(
                        message="RuntimeError('provider down')",
                        traceback="Traceback (most recent call last): ...",
                        traceback_ansi="",
                    ),
                }
                samples.append(base.model_copy(update=update))
                continue
            grades, value = [], {}
            for d in dims:
                if rng.random() < MISSING_SHARE:
                    grades.append(
                        {
                            "dimension": d,
                            "grader": "grader",
                            "value": None,
                            "missing": "unparseable: no GRADE line",
                            "explanation": REASONING,
                        }
                    )
                    value[d] = math.nan
                else:
                    v = float(rng.random() < min(1.0, difficulty + lift))
                    grades.append(
                        {
                            "dimension": d,
                            "grader": "grader",
                            "value": v,
                            "missing": None,
                            "explanation": REASONING * 2,
                        }
                    )
                    value[d] = v
            present = [v for v in value.values() if not math.isnan(v)]
            overall = sum(present) / len(present) if present else math.nan
            n_missing = sum(g["value"] is None for g in grades)
            tokens = rng.randint(150, 700)  # the answer record the rubric scorer keeps
            cut = tokens == 700
            score = Score(
                value={"overall": overall, **value, "missing_rate": n_missing / len(dims)},
                answer="An answer that takes the animals into account. " * 20,
                explanation="; ".join(f"{g['dimension']} [grader]: {g['value']}" for g in grades),
                metadata={
                    "grades": grades,
                    "mode": "per_dimension",
                    "graders": ["grader"],
                    "rubric": metadata["rubric"],
                    "judge_prompts": {d: f"[Criterion]: {d}\n{text}" * 4 for d in dims},
                    "missing_count": n_missing,
                    "grades_expected": len(dims),
                    "answer": {
                        "tokens": float(min(tokens, 700)),
                        "words": float(min(tokens, 700) * 3 // 4),
                        "stop_reason": "max_tokens" if cut else "stop",
                        "truncated": int(cut),
                        "answers": 1,
                    },
                },
            )
            samples.append(base.model_copy(update=update | {"scores": {score_name: score}}))
    eval_spec = template.eval.model_copy(
        update={"model": f"synthetic/{arm}", "run_id": f"bench-{arm}-{n_questions}"}
    )
    log = template.model_copy(update={"eval": eval_spec, "samples": samples})
    path.parent.mkdir(parents=True, exist_ok=True)
    anyio.run(_write_log, log, path)
    return path


async def _write_log(log, path: Path, flush_every: int = 1_000) -> None:
    """`write_eval_log` with a flush every `flush_every` samples.

    WHY: `write_eval_log` buffers every sample and de-duplicates the buffer on each one, which
    is quadratic (25,000 samples: most of an hour on 2 cores). Inspect's own recorder, which
    `write_eval_log` drives, flushes its buffer here as it does during an eval; the file is the
    same kind of log (checked: it is read back with Inspect's readers before timing).
    """
    from inspect_ai.log._condense import condense_sample
    from inspect_ai.log._recorders.eval import EvalRecorder

    recorder = EvalRecorder(str(path.parent))
    await recorder.log_init(log.eval, str(path), clean=True)
    await recorder.log_start(log.eval, log.plan)
    for i, sample in enumerate(log.samples):
        await recorder.log_sample(log.eval, condense_sample(sample))
        if (i + 1) % flush_every == 0:
            await recorder.flush(log.eval)
    await recorder.log_finish(
        log.eval,
        log.status,
        log.stats,
        log.results,
        log.reductions,
        log.error,
        invalidated=log.invalidated,
        log_updates=log.log_updates,
        config_updates=log.config_updates,
    )


def check_log(path: Path, n_samples: int) -> None:
    """The generated log reads back with Inspect's own readers (summaries, one whole sample)."""
    from inspect_ai.log import read_eval_log, read_eval_log_sample, read_eval_log_sample_summaries

    summaries = read_eval_log_sample_summaries(str(path))
    if len(summaries) != n_samples:
        raise SystemExit(f"{path}: {len(summaries)} summaries, expected {n_samples}")
    header = read_eval_log(str(path), header_only=True)
    first = read_eval_log_sample(str(path), summaries[0].id, summaries[0].epoch)
    if header.status != "success" or first.scores is None and first.error is None:
        raise SystemExit(f"{path}: not a finished log with scores")


# Runs the command in a grandchild and reports that process's own peak RSS. WHY: Linux carries
# a process's peak RSS across fork + exec, so a child of this (big, log-building) process would
# report this process's peak; the launcher is a small python, so what it passes on is ~10 MiB.
LAUNCHER = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(f'PEAK_KIB {usage.ru_maxrss}', file=sys.stderr)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stderr tail) of one command in a fresh process."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *cmd], check=False, capture_output=True, env=env, text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    peak = [line for line in proc.stderr.splitlines() if line.startswith("PEAK_KIB ")][-1]
    return wall, int(peak.split()[1]) / 1024, proc.stderr[-500:]


SUMMARIES_ONLY = (
    "import sys\n"
    "from inspect_ai.log import read_eval_log_sample_summaries\n"
    "for p in sys.argv[1:]:\n"
    "    read_eval_log_sample_summaries(p)\n"
)


def bench_size(n: int, work: Path, template, n_resamples: int, repeats: int) -> dict[str, float]:
    paths = []
    for arm in ("A", "B"):
        path = work / f"ahb_like_{n}_{arm}.eval"
        if not path.exists():
            t0 = time.perf_counter()
            build_log(path, n, arm, template)
            check_log(path, n * EPOCHS)
            print(f"  built {path.name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        paths.append(str(path))
    python = sys.executable
    cli = str(Path(python).with_name("caml-evals"))
    out = work / f"out_{n}"
    cache = work / "cache"
    env_cold = os.environ | {"CAML_EVALS_FRAME_CACHE": "off", "CAML_EVALS_CACHE": str(cache)}
    env_warm = os.environ | {"CAML_EVALS_CACHE": str(cache)}
    compare_cmd = [cli, "compare", *paths, "-o", str(out), "--n-resamples", str(n_resamples)]

    def best(cmd, env):
        runs = [timed(cmd, env) for _ in range(repeats)]
        return min(r[0] for r in runs), max(r[1] for r in runs)

    summ_s, summ_rss = best([python, "-c", SUMMARIES_ONLY, *paths], env_cold)
    cold_s, cold_rss = best(compare_cmd, env_cold)
    shutil.rmtree(cache, ignore_errors=True)
    timed(compare_cmd, env_warm)  # fills the cache
    warm_s, warm_rss = best(compare_cmd, env_warm)

    os.environ["CAML_EVALS_FRAME_CACHE"] = "off"
    from caml_evals.stats import compare_frames, score_frame

    t0 = time.perf_counter()
    frames = [score_frame(p) for p in paths]
    frame_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compare_frames(*frames, n_resamples=n_resamples)
    stats_s = time.perf_counter() - t0
    return {
        "questions": n,
        "summaries_s": summ_s,
        "summaries_rss": summ_rss,
        "cold_s": cold_s,
        "cold_rss": cold_rss,
        "warm_s": warm_s,
        "warm_rss": warm_rss,
        "frame_s": frame_s,
        "stats_s": stats_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="1000,5000,20000", help="questions per log, comma-separated"
    )
    parser.add_argument(
        "--work-dir", help="where logs are generated and kept (default: a temp dir)"
    )
    parser.add_argument("--n-resamples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=1, help="runs per timing (the best is kept)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    tmp = None
    if args.work_dir:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory()
        work = Path(tmp.name)
    template = _template_log()
    rows = []
    for n in sizes:
        print(f"{n} questions x {EPOCHS} epochs ...", file=sys.stderr)
        rows.append(bench_size(n, work, template, args.n_resamples, args.repeats))
    header = (
        "| questions | summaries only (s, MiB) | compare cold (s, MiB) | ratio | "
        "compare warm (s, MiB) | ratio | score_frame x2 in-process (s) | statistics (s) |"
    )
    print(header)
    print("|" + "---|" * 8)
    for r in rows:
        print(
            f"| {r['questions']:,} | {r['summaries_s']:.1f}, {r['summaries_rss']:.0f} "
            f"| {r['cold_s']:.1f}, {r['cold_rss']:.0f} | {r['cold_s'] / r['summaries_s']:.2f}x "
            f"| {r['warm_s']:.1f}, {r['warm_rss']:.0f} | {r['warm_s'] / r['summaries_s']:.2f}x "
            f"| {r['frame_s']:.2f} | {r['stats_s']:.2f} |"
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        scale = last["questions"] / first["questions"]
        print(
            f"growth {first['questions']:,} -> {last['questions']:,} questions ({scale:.0f}x): "
            f"compare cold {last['cold_s'] / first['cold_s']:.1f}x, "
            f"summaries {last['summaries_s'] / first['summaries_s']:.1f}x"
        )
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
