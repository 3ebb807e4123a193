"""`caml-evals depth` and `caml-evals probe ...`: the depth probes' command-line verbs.

    caml-evals depth BASE TUNED --task ahb --limit 20 --max-tokens 64 --out results/depth
    caml-evals probe report LOG [--plain PLAIN_LOG] [--json out.json]
    caml-evals probe persona smollm2 [CHECKPOINT...] --task ahb --limit 10 --steer 0 4 [--grader M]
    caml-evals probe steer smollm2 persona/direction.pt --alpha 0 4 8 --task ahb --grader MODEL

argparse only; the work is in `caml_evals.probes` (docs/probes.md).
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from caml_evals.errors import TaskArgumentError


def _task_args(pairs: list[str] | None) -> dict[str, Any]:
    import yaml

    args: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise TaskArgumentError(f"-T {pair!r}: give key=value")
        args[key.replace("-", "_")] = yaml.safe_load(value)  # as `inspect eval -T` reads it
    return args


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def run_depth(args: argparse.Namespace) -> int:
    from caml_evals.jsonsafe import nan_to_none
    from caml_evals.outputs import writable_dir, write_text
    from caml_evals.probes.depth import depth_profiles, load_local, plot_depth, task_questions

    if args.max_tokens < 1 or (args.limit is not None and args.limit < 1):
        raise TaskArgumentError("--max-tokens and --limit must be at least 1")
    out = writable_dir(args.out)
    questions = task_questions(args.task, args.limit, _task_args(args.task_arg))
    base, tuned = load_local(args.base), load_local(args.tuned)
    result = depth_profiles(
        base,
        tuned,
        questions,
        max_new_tokens=args.max_tokens,
        answers_from=args.answers_from,
        head=args.head,
        task=args.task,
    )
    write_text(
        out / "depth.json",
        json.dumps(nan_to_none(result.model_dump()), indent=2, allow_nan=False) + "\n",
    )
    plot_depth(result, out / "depth.png")
    for p in result.profiles:
        print(
            f"along {p.answers_from} answers ({p.answers}): mean KL first {p.head} tokens "
            f"{_fmt(p.mean_kl_first)}, later tokens {_fmt(p.mean_kl_rest)}"
        )
    print(f"wrote {out / 'depth.json'} and {out / 'depth.png'}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from caml_evals.jsonsafe import nan_to_none
    from caml_evals.outputs import writable_file, write_text
    from caml_evals.probes.report import probe_report

    if args.json:
        writable_file(args.json)
    report = probe_report(args.log, plain=args.plain)
    for key, value in report.items():
        print(f"{key}\t{_fmt(value)}")
    if args.json:
        write_text(args.json, json.dumps(nan_to_none(report), indent=2, allow_nan=False) + "\n")
    return 0


def _grader(args: argparse.Namespace) -> Any:
    """The judge of the steered runs (`--grader` with its `--grader-arg`s), or None."""
    if not args.grader:
        if args.grader_arg:
            raise TaskArgumentError("--grader-arg needs --grader MODEL")
        return None
    from inspect_ai.model import get_model

    return get_model(args.grader, **_task_args(args.grader_arg))


def _curve(args: argparse.Namespace, model: str, direction: Any, alphas: list[float], out) -> int:
    """Run and write the score-vs-alpha curve; print one line per alpha; 1 if an alpha failed."""
    from caml_evals.probes.steer_curve import steer_curve, write_curve

    curve = steer_curve(
        model,
        direction,
        alphas,
        grader=_grader(args),
        task=args.task,
        task_args=_task_args(args.task_arg),
        limit=args.limit,
        max_tokens=args.max_tokens,
        log_dir=args.log_dir or out / "steer_logs",
    )
    js, png = write_curve(curve, out)
    print("alpha\tscore\tci_low\tci_high\tdiff_vs_0\tdiff_ci_low\tdiff_ci_high\tn\tstatus")
    for p in curve.points:
        values = (p.score, p.ci_low, p.ci_high, p.diff, p.diff_ci_low, p.diff_ci_high)
        cells = [_fmt(math.nan if v is None else v) for v in values]
        n = "n/a" if p.n is None else str(p.n)
        print(f"{p.alpha:g}\t" + "\t".join(cells) + f"\t{n}\t{p.status}")
    print(f"wrote {js} and {png}")
    return 0 if all(p.status == "success" for p in curve.points) else 1


def run_steer(args: argparse.Namespace) -> int:
    from caml_evals.outputs import writable_dir
    from caml_evals.probes.steer import load_direction

    load_direction(args.direction)  # a bad file is one line before any model loads
    if not args.grader:
        raise TaskArgumentError(
            "--grader MODEL is required: the steered model must not grade itself"
        )
    return _curve(args, args.model, args.direction, args.alpha, writable_dir(args.out))


def run_persona(args: argparse.Namespace) -> int:
    from caml_evals.jsonsafe import nan_to_none
    from caml_evals.outputs import writable_dir, write_text
    from caml_evals.probes.depth import load_local, task_questions
    from caml_evals.probes.persona import load_pairs, persona_probe

    if args.grader and not (args.steer and args.limit):
        raise TaskArgumentError(
            "--grader scores the steered runs: give --steer ALPHA... and --limit >= 1"
        )
    _grader(args)  # a bad grader is one line before the direction is derived
    out = writable_dir(args.out)
    pairs = load_pairs(args.pairs)
    questions = (
        task_questions(args.task, args.limit, _task_args(args.task_arg)) if args.limit else []
    )
    lm = load_local(args.model)
    checkpoints = [load_local(c) for c in args.checkpoints]
    result = persona_probe(
        lm,
        pairs=pairs,
        pairs_file=args.pairs,
        seed=args.seed,
        layer=args.layer,
        checkpoints=checkpoints,
        questions=questions,
        max_new_tokens=args.max_tokens,
        alphas=args.steer or [],
        direction_file=out / "direction.pt",
    )
    write_text(
        out / "persona.json",
        json.dumps(nan_to_none(result.model_dump()), indent=2, allow_nan=False) + "\n",
    )
    chosen = next(s for s in result.layers if s.layer == result.best_layer)
    print(
        f"layer {chosen.layer}: held-out separation {chosen.accuracy:.3f} "
        f"({len(result.held_out_pairs)} pairs, chance 0.5), gap z {chosen.gap_z:.2f}"
    )
    for name, value in result.projections.items():
        print(f"projection\t{name}\t{_fmt(value)}")
    print(f"wrote {out / 'persona.json'} and {out / 'direction.pt'} (for -T steer=)")
    if args.grader:
        return _curve(args, args.model, out / "direction.pt", args.steer, out)
    return 0


def _add_grader(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grader", help="judge model of the steered runs (not the model itself)")
    parser.add_argument(
        "--grader-arg", action="append", metavar="KEY=VALUE", help="model argument of the grader"
    )
    parser.add_argument(
        "--log-dir", help="Inspect logs of the steered runs (default OUT/steer_logs)"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    d = subparsers.add_parser(
        "depth",
        help="per-token KL between two local checkpoints along their answers, by position",
    )
    d.add_argument("base", help="base checkpoint: caml/<dir>, a folder, or smollm2")
    d.add_argument("tuned", help="tuned checkpoint (same tokenizer as the base)")
    d.add_argument("--task", default="ahb", help="task whose questions are answered (default ahb)")
    d.add_argument("-T", dest="task_arg", action="append", help="task parameter key=value")
    d.add_argument("--limit", type=int, default=20, help="questions (default 20)")
    d.add_argument("--max-tokens", type=int, default=64, help="answer tokens (default 64)")
    d.add_argument("--head", type=int, default=5, help="'first tokens' span in the summary")
    d.add_argument(
        "--answers-from",
        nargs="+",
        choices=["tuned", "base"],
        default=["tuned", "base"],
        help="whose greedy answers to score (default both)",
    )
    d.add_argument("--out", "-o", default="depth", help="output folder (depth.json, depth.png)")
    d.set_defaults(func=run_depth)

    p = subparsers.add_parser(
        "probe", help="depth-probe reports (prefill, pushback, cot) and the persona-vector probe"
    )
    sub = p.add_subparsers(dest="probe_command", required=True, metavar="PROBE")
    r = sub.add_parser("report", help="a probed log's scores paired with the plain ones")
    r.add_argument("log", help="a log of a task run with -T prefill/pushback/cot")
    r.add_argument("--plain", help="prefill only: the plain run of the same task to pair with")
    r.add_argument("--json", help="also write the report as JSON here")
    r.set_defaults(func=run_report)
    q = sub.add_parser("persona", help="compassion direction per layer (persona vectors)")
    q.add_argument("model", help="local checkpoint the direction is derived from (e.g. smollm2)")
    q.add_argument("checkpoints", nargs="*", help="more checkpoints to project on the direction")
    q.add_argument("--pairs", help="contrastive pairs JSONL (default: the shipped set)")
    q.add_argument("--seed", type=int, default=0, help="train / held-out split seed")
    q.add_argument("--layer", type=int, help="layer to project and steer (default: best)")
    q.add_argument("--task", default="ahb", help="task whose questions are answered")
    q.add_argument("-T", dest="task_arg", action="append", help="task parameter key=value")
    q.add_argument("--limit", type=int, default=10, help="questions (0: separation only)")
    q.add_argument("--max-tokens", type=int, default=48, help="answer tokens")
    q.add_argument("--steer", type=float, nargs="+", help="alphas to steer the model with")
    q.add_argument("--out", "-o", default="persona", help="output folder (persona.json)")
    _add_grader(q)
    q.set_defaults(func=run_persona)
    c = sub.add_parser(
        "steer", help="a rubric task's score vs steering alpha on a local checkpoint (PNG + JSON)"
    )
    c.add_argument("model", help="local checkpoint to steer (caml/<dir>, a folder, or smollm2)")
    c.add_argument("direction", help="direction.pt written by `caml-evals probe persona`")
    c.add_argument("--alpha", type=float, nargs="+", required=True, help="alphas (0 is added)")
    c.add_argument("--task", default="ahb", help="rubric task to score (default ahb)")
    c.add_argument("-T", dest="task_arg", action="append", help="task parameter key=value")
    c.add_argument("--limit", type=int, default=5, help="samples per alpha (default 5)")
    c.add_argument("--max-tokens", type=int, default=128, help="answer tokens (default 128)")
    c.add_argument("--out", "-o", default="steer", help="output folder (steer_curve.json, .png)")
    _add_grader(c)
    c.set_defaults(func=run_steer)
