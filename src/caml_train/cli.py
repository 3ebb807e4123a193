"""`caml-train ...`: generate | train | run | results. Thin: parse arguments, call the modules.

caml-train train stage.yaml [--set hparams.max_steps=10]   one stage (torchrun/accelerate-able)
caml-train run experiment.yaml [--dry-run] [--no-eval]      the whole grid, resumable
caml-train results experiment.yaml                          rebuild results.md/json from logs
caml-train generate ...                                     synthetic corpora (caml_train.generate)
caml-train rlaif --policy DIR --prompts F --n N --judge M -o OUT   RLAIF preference pairs
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

from .config import ConfigError, ExperimentConfig, TrainConfig, load_config, parse_overrides

GENERATE_CLI = "caml_train.generate.cli"


def _overrides(args: argparse.Namespace) -> dict:
    out = parse_overrides(args.set)
    if getattr(args, "output_dir", None):
        out["output_dir"] = str(Path(args.output_dir).resolve())
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    config = load_config(args.config, TrainConfig, _overrides(args))
    result = train(config, stage_key=args.stage_key, force=args.force)
    state = "cached" if result.cached else "trained"
    card = result.run_card
    print(
        f"{state}: {result.merged_dir} (step {card.global_step}, loss {card.train_loss}, "
        f"data {card.data_sha256[:12]})"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .experiment import ExperimentError, plan, run_experiment

    config = load_config(args.config, ExperimentConfig, _overrides(args))
    if args.dry_run:
        p = plan(config, resolve_corpora=False)
        for st in p.stages:
            state = st.state()
            print(
                f"stage {st.label:<28} {st.key[:12]}  {state:<10} {st.directory or st.model_spec}"
            )
        for ep in p.evals:
            print(f"eval  {ep.stage.label:<28} {ep.key[:12]}  {ep.task.task} -> {ep.log_dir}")
        return 0
    try:
        report = run_experiment(
            config,
            evaluate=not args.no_eval,
            only_arms=args.only,
            progress=lambda m: print(m, file=sys.stderr, flush=True),
        )
    except ExperimentError as ex:
        print(str(ex), file=sys.stderr)
        return 1
    print(
        f"trained {len(report.trained)} stage(s), {len(report.cached_stages)} cached; "
        f"evaluated {len(report.evaluated)}, {len(report.cached_evals)} cached"
    )
    if report.results_md:
        print(report.results_md.read_text())
        print(f"results: {report.results_md} and {report.results_json}")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from .experiment import plan
    from .results import build_results, nan_to_none, render_markdown, write_results

    config = load_config(args.config, ExperimentConfig, _overrides(args))
    results = build_results(config, plan(config, resolve_corpora=False))
    md, js = write_results(results, config.output_dir)
    if args.json:
        print(json.dumps(nan_to_none(results.model_dump(mode="json")), indent=2, allow_nan=False))
    else:
        print(render_markdown(results))
    print(f"wrote {md} and {js}", file=sys.stderr)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="YAML config")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set hparams.max_steps=10 (repeatable)",
    )
    p.add_argument("--output-dir", help="override output_dir (relative to the current directory)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train one stage (text | instruct | sft | pref) from a YAML config"
    )
    _common(p)
    p.add_argument("--stage-key", help=argparse.SUPPRESS)
    p.add_argument(
        "--force", action="store_true", help="retrain even if the merged checkpoint exists"
    )
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser(
        "run", help="run (or resume) an experiment grid and write the results table"
    )
    _common(p)
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan with cache keys and states"
    )
    p.add_argument("--no-eval", action="store_true", help="train only")
    p.add_argument("--only", action="append", metavar="ARM", help="run only this arm (repeatable)")
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser(
        "results", help="rebuild results.md/results.json from an experiment's logs"
    )
    _common(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    p.set_defaults(func=cmd_results)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caml-train",
        description="Synthetic documents -> document-tuning -> SFT -> scored checkpoints.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    try:
        importlib.import_module(GENERATE_CLI).register(subparsers)
    except ModuleNotFoundError as ex:
        if ex.name != GENERATE_CLI:
            raise
    register(subparsers)
    from .rlaif import register as register_rlaif

    register_rlaif(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `caml-train` console script, under caml-evals' one error rule (a user error is one
    line `caml-train <command>: <message>` and exit 2; a bug, a line with its traceback file
    and exit 3: docs/errors.md)."""
    from caml_evals.cli.errors import command_prog, one_line_argparse, run_cli

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = one_line_argparse(build_parser())
    commands = [n for a in parser._subparsers._group_actions for n in a.choices]  # type: ignore[union-attr]
    return run_cli(
        command_prog("caml-train", argv, commands), _main, parser, argv, user_errors=(ConfigError,)
    )


def _main(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
