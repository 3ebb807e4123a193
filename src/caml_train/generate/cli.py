"""`caml-train generate` (documents) and `caml-train generate-instructions` (the Q/A control).

Thin: parse flags into a `RunConfig`, run the pipeline, print a summary (a rich table on a terminal,
plain lines when piped). The manifest JSON is always written next to the corpus. Exit status: 0 when
every planned request has a response, 1 when some failed or were missing (rerun the same command:
finished responses come from the cache), 2 on a usage error (bad spec, bad --shard, ...).
Also runnable alone: `python -m caml_train.generate.cli generate ...`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from platformdirs import user_cache_dir
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from caml_train.generate.cache import ResponseCache
from caml_train.generate.client import RetryPolicy
from caml_train.generate.engines import EngineUnavailable
from caml_train.generate.grid import Shard
from caml_train.generate.manifest import Manifest
from caml_train.generate.spec import SpecError, available_specs, load_spec


def default_cache_dir() -> Path:
    """$CAML_TRAIN_GENERATE_CACHE, else the user cache folder; shared by runs so reruns are free."""
    env = os.environ.get("CAML_TRAIN_GENERATE_CACHE")
    return Path(env) if env else Path(user_cache_dir("caml-train")) / "generate"


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(str(ex)) from ex


def _concurrency(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from ex
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--spec",
        required=True,
        help=f"shipped spec name ({', '.join(available_specs())}) or path to a YAML spec",
    )
    p.add_argument("--model", required=True, help="litellm model, e.g. openai/gpt-4o-mini")
    p.add_argument(
        "--api-base",
        default=None,
        help="OpenAI-compatible endpoint, e.g. http://host:8000/v1 (--mode batch: the provider's"
        " API root)",
    )
    p.add_argument(
        "--api-key",
        default=None,
        help="API key (default: the provider's env var, e.g. OPENAI_API_KEY; 'EMPTY' for a local --api-base)",
    )
    p.add_argument("--n", type=int, default=None, help="how many (default: the spec's n_documents)")
    p.add_argument("--seed", type=int, default=0, help="grid sampling seed (default 0)")
    p.add_argument(
        "--shard",
        type=_shard,
        default=Shard(),
        help="this machine's share, INDEX/COUNT, 0-based (e.g. 2/8)",
    )
    p.add_argument(
        "--concurrency",
        type=_concurrency,
        default=8,
        help="requests in flight (default 8), or 'auto': AIMD up to the provider's rate limit",
    )
    p.add_argument(
        "--mode",
        choices=["online", "batch"],
        default="online",
        help="batch: the provider's batch API at about half the price (openai/, anthropic/,"
        " gemini/; resumable)",
    )
    p.add_argument(
        "--engine",
        choices=["api", "vllm"],
        default="api",
        help="vllm: generate in-process with vllm.LLM on this machine's GPUs (same cache keys)",
    )
    p.add_argument(
        "--engine-model", default=None, help="--engine vllm weights (default: --model sans prefix)"
    )
    p.add_argument(
        "--batch-poll", type=float, default=30.0, help="seconds between batch status polls"
    )
    p.add_argument(
        "--batch-timeout",
        type=float,
        default=None,
        help="stop waiting after this many seconds (batches keep running; rerun to collect)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="response cache (default: $CAML_TRAIN_GENERATE_CACHE or user cache)",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="output folder for corpus, rejects, manifest"
    )
    p.add_argument(
        "--temperature", type=float, default=None, help="override the spec's temperature"
    )
    p.add_argument("--max-tokens", type=int, default=None, help="override the spec's max_tokens")
    p.add_argument("--max-attempts", type=int, default=6, help="attempts per request (default 6)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per attempt (default 600)")
    p.add_argument(
        "--retry-base-delay",
        type=float,
        default=1.0,
        help="first backoff delay in seconds (default 1)",
    )
    p.add_argument(
        "--cache-only",
        action="store_true",
        help="make no API call: build the corpus from cached responses (e.g. after merging shard caches)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="show the plan, cache hits, the first prompt and the forecast (tokens, price online"
        " and in batch mode, wall time); call nothing",
    )
    p.add_argument(
        "--rpm", type=float, default=None, help="provider's requests-per-minute limit (forecast)"
    )
    p.add_argument(
        "--tpm", type=float, default=None, help="provider's tokens-per-minute limit (forecast)"
    )
    p.add_argument(
        "--latency",
        type=float,
        default=None,
        help="seconds per request for the forecast (default: 0.5 s + completion tokens at 60/s)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `generate` and `generate-instructions` to a `caml-train` subparser set."""
    docs = subparsers.add_parser(
        "generate",
        help="generate a synthetic document corpus from a spec (litellm, cached, resumable, shardable)",
        description="Generate synthetic documents for document-tuning. See docs/generation.md.",
    )
    _add_common(docs)
    docs.set_defaults(func=run_generate)

    qa = subparsers.add_parser(
        "generate-instructions",
        help="generate the instruction-tuning control (user/assistant Q/A pairs)",
        description=(
            "Generate Q/A pairs carrying the spec's content: from a documents corpus (--documents) or "
            "straight from the template grid."
        ),
    )
    _add_common(qa)
    qa.add_argument(
        "--documents",
        type=Path,
        default=None,
        help="documents.jsonl written by `generate`: derive the pairs from each document",
    )
    qa.set_defaults(func=run_generate_instructions)

    merge = subparsers.add_parser(
        "merge-shards",
        help="merge shard corpora into one and remove near-duplicates across shards (bounded memory)",
        description=(
            "Stream the shards' corpora in order, drop rows that near-duplicate an earlier kept row"
            " of any shard (MinHash LSH on disk) or repeat an id, write the merged corpus, the"
            " dropped rows and a JSON report."
        ),
    )
    merge.add_argument("inputs", nargs="+", type=Path, help="shard output folders or JSONL files")
    merge.add_argument("--out", type=Path, required=True, help="folder for the merged corpus")
    merge.add_argument("--kind", choices=["documents", "instructions"], default="documents")
    merge.add_argument(
        "--threshold", type=float, default=None, help="Jaccard threshold (default: the spec's)"
    )
    merge.add_argument(
        "--num-perm", type=int, default=None, help="MinHash permutations (default: the spec's)"
    )
    merge.add_argument(
        "--shingle-words", type=int, default=None, help="words per shingle (default: the spec's)"
    )
    merge.set_defaults(func=run_merge)

    report = subparsers.add_parser(
        "corpus-report",
        help="grid coverage, distinct-n, key phrases per 1k tokens, lengths, preaching hit rate (+ PNG)",
        description=(
            "Measure a generated documents corpus (a folder of documents*.jsonl with their manifests,"
            " or one JSONL file); print it, write corpus_report.json and corpus_report.png."
        ),
    )
    report.add_argument(
        "path", type=Path, help="generate --out folder, merged folder or a JSONL file"
    )
    report.add_argument("--spec", default=None, help="spec (default: the one in the manifests)")
    report.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the JSON and PNG (default: beside the corpus)",
    )
    report.add_argument(
        "--sample", type=int, default=5000, help="documents for distinct-n (default 5000)"
    )
    report.set_defaults(func=run_corpus_report)


def _config(args: argparse.Namespace):  # -> RunConfig (import kept lazy: litellm is heavy)
    from caml_train.generate.pipeline import RunConfig

    spec = load_spec(args.spec)
    return RunConfig(
        spec=spec,
        spec_ref=str(args.spec),
        model=args.model,
        api_base=args.api_base,
        api_key=args.api_key,
        out_dir=args.out,
        cache_dir=args.cache_dir or default_cache_dir(),
        n=args.n,
        seed=args.seed,
        shard=args.shard,
        concurrency=args.concurrency,
        cache_only=args.cache_only,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        retry=RetryPolicy(
            max_attempts=args.max_attempts, timeout=args.timeout, base_delay=args.retry_base_delay
        ),
        documents=getattr(args, "documents", None),
        **_scale_options(args, RunConfig),
    )


_SCALE_DEFAULTS = {
    "mode": "online",
    "engine": "api",
    "engine_model": None,
    "batch_poll": 30.0,
    "batch_timeout": None,
}


def _scale_options(args: argparse.Namespace, config_cls: type) -> dict:
    """The at-scale options the pipeline's RunConfig knows; asking for one it does not know is an
    error, never silently an online run."""
    from caml_evals.errors import ConfigError

    out = {}
    for name, default in _SCALE_DEFAULTS.items():
        value = getattr(args, name, default)
        if name in config_cls.model_fields:
            out[name] = value
        elif value != default:
            raise ConfigError(f"--{name.replace('_', '-')} is not wired into this pipeline yet")
    return out


def completion_target(cfg, kind: str) -> int:
    """Expected completion tokens per request: the spec's length target for a document (about
    400 tokens per Q/A pair for instructions), never more than max_tokens."""
    max_tokens = int(cfg.request_params()["max_tokens"])
    target = cfg.spec.target_tokens if kind == "documents" else 400 * cfg.spec.qa_pairs_per_request
    return min(target, max_tokens)


def _dry_run(cfg, jobs, console: Console, args: argparse.Namespace, kind: str) -> int:
    from caml_train.generate.forecast import forecast

    cache = ResponseCache(cfg.cache_dir)
    unique = {j.key: j for j in jobs}
    cached = {k for k in unique if k in cache}
    console.print(
        f"spec {cfg.spec.name} (grid {cfg.spec.grid.size} cells), shard {cfg.shard.label}: "
        f"{len(jobs)} requests planned, {len(cached)} already cached,"
        f" {len(unique) - len(cached)} to send to {cfg.model}"
    )
    if jobs:
        console.print("first request:")
        for message in jobs[0].messages:
            console.print(f"[{message['role']}]\n{message['content']}\n", markup=False)
    result = forecast(
        (j.messages for k, j in unique.items() if k not in cached),
        model=cfg.model,
        planned=len(jobs),
        cached=len(cached),
        completion_tokens_per_request=completion_target(cfg, kind),
        concurrency=None if cfg.concurrency == "auto" else cfg.concurrency,
        rpm=args.rpm,
        tpm=args.tpm,
        latency_s=args.latency,
    )
    console.print("forecast:", markup=False)
    for line in result.lines():
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    return 0


def _user_error(ex: Exception) -> Exception:
    """The project's one-line user error for a problem with the spec, the flags or the input
    corpus (`caml_evals.cli.errors.run_cli` prints it as `caml-train generate: <message>`)."""
    from caml_evals.errors import ConfigError, DataSourceError

    if isinstance(ex, FileNotFoundError):
        return DataSourceError(f"{ex.filename or ex}: no such file")
    if isinstance(ex, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'option'}: {e['msg']}" for e in ex.errors()
        )
        return ConfigError(f"invalid generation option(s): {problems}")
    return ConfigError(str(ex))


def _check_scale_options(args: argparse.Namespace, model: str) -> None:
    """Refuse combinations that cannot work before anything is planned or paid for."""
    from caml_evals.errors import ConfigError
    from caml_train.generate.batch import check_batch_options

    if getattr(args, "mode", "online") == "batch":
        check_batch_options(model, getattr(args, "api_key", None))
    if getattr(args, "mode", "online") == "batch" and getattr(args, "engine", "api") == "vllm":
        raise ConfigError("--mode batch and --engine vllm exclude each other")


def check_out_dir(out: Path) -> None:
    """Fail before any request is paid for when the output folder cannot be created or written."""
    from caml_evals.errors import OutputError

    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputError(f"cannot create output folder {out}: {probe} is not a directory")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write output folder {out}: permission denied on {probe}")


def _run(args: argparse.Namespace, kind: str) -> int:
    from caml_train.generate import pipeline

    console = Console(stderr=True)
    try:
        cfg = _config(args)
        _check_scale_options(args, cfg.model)
        if not args.dry_run:
            check_out_dir(cfg.out_dir)
        if args.dry_run:
            jobs = (
                pipeline.plan_documents(cfg)
                if kind == "documents"
                else pipeline.plan_instructions(cfg)[0]
            )
            return _dry_run(cfg, jobs, console, args, kind)
        run = pipeline.generate_documents if kind == "documents" else pipeline.generate_instructions
        manifest = run(cfg, console)
    except (SpecError, pipeline.SpecMismatchError, ValidationError, FileNotFoundError) as ex:
        raise _user_error(ex) from ex
    except EngineUnavailable as ex:
        from caml_evals.errors import ConfigError

        raise ConfigError(str(ex)) from ex
    print_summary(manifest, Console())
    if not manifest.complete:
        console.print(
            f"[yellow]{manifest.counts.failed} request(s) failed and {manifest.counts.missing_from_cache}"
            " are missing from the cache; rerun the same command to fill them in (cached responses are"
            " not requested again).[/yellow]"
        )
        return 1
    return 0


def run_generate(args: argparse.Namespace) -> int:
    return _run(args, "documents")


def run_generate_instructions(args: argparse.Namespace) -> int:
    return _run(args, "instructions")


def run_merge(args: argparse.Namespace) -> int:
    from caml_evals.errors import ConfigError
    from caml_train.generate.merge import MergeError, merge_corpora

    if not args.inputs:
        raise ConfigError("merge-shards needs at least one input")
    check_out_dir(args.out)
    try:
        report = merge_corpora(
            args.inputs,
            args.out,
            kind=args.kind,
            threshold=args.threshold,
            num_perm=args.num_perm,
            shingle_words=args.shingle_words,
        )
    except (MergeError, UnicodeDecodeError) as ex:
        raise ConfigError(f"merge-shards: {ex}") from ex
    except ValueError as ex:  # a dedup setting out of range
        raise ConfigError(str(ex)) from ex
    dropped = ", ".join(f"{k} {v}" for k, v in report.dropped.items()) or "none"
    print(
        f"merged {len(report.inputs)} file(s): {report.rows_in} rows in, {report.written} written,"
        f" dropped: {dropped}; malformed lines: {len(report.malformed)}"
    )
    print(f"corpus: {report.files['corpus']}\nreport: {report.files['report']}")
    return 0


def run_corpus_report(args: argparse.Namespace) -> int:
    import json

    from caml_evals.errors import ConfigError, DataSourceError
    from caml_train.generate.corpus_report import corpus_stats, plot, read_rows
    from caml_train.generate.rows import write_json
    from caml_train.generate.spec import GenerationSpec

    path: Path = args.path
    if path.is_dir():
        files = sorted(path.glob("documents*.jsonl"))
        folder = path
    elif path.is_file():
        files, folder = [path], path.parent
    else:
        raise DataSourceError(f"{path}: no such file or folder")
    if not files:
        raise DataSourceError(f"{path}: no documents*.jsonl in it (a generate --out folder?)")
    manifests = []
    for f in files:
        m = f.with_name(f.name.removesuffix(".jsonl") + ".manifest.json")
        if m.is_file():
            try:
                manifests.append(json.loads(m.read_text(encoding="utf-8")))
            except (ValueError, UnicodeDecodeError) as ex:
                raise DataSourceError(f"{m}: cannot read manifest ({ex})") from ex
    if args.spec:
        try:
            spec = load_spec(args.spec)
        except SpecError as ex:
            raise ConfigError(str(ex)) from ex
    elif manifests and "spec_config" in manifests[0]:
        spec = GenerationSpec.model_validate(manifests[0]["spec_config"])
    else:
        raise ConfigError(f"{path}: no manifest beside the corpus; pass --spec")
    out = args.out or folder
    check_out_dir(out)
    rows, bad = read_rows(files)
    stats = corpus_stats(rows, spec, manifests, diversity_sample=args.sample)
    stats.malformed_lines = bad[0]
    write_json(out / "corpus_report.json", stats.model_dump(mode="json"))
    png = plot(stats, out / "corpus_report.png")
    for line in stats.lines():
        print(line)
    print(f"report: {out / 'corpus_report.json'}\nplot: {png}")
    return 0


def print_summary(manifest: Manifest, console: Console) -> None:
    c = manifest.counts
    lines = [
        ("planned", c.planned),
        ("from cache", c.from_cache),
        ("generated now", c.generated),
        ("failed", c.failed),
        ("missing from cache", c.missing_from_cache),
    ]
    if manifest.kind == "instructions":
        lines += [("unparseable replies", c.unparseable_replies), ("pairs parsed", c.pairs_parsed)]
    lines += [(f"dropped: {reason}", count) for reason, count in manifest.dropped.items()]
    lines += [("written", c.written)]
    usage = manifest.usage
    cost = f"${usage.this_run.cost_usd:.4f} now, ${usage.total.cost_usd:.4f} total"
    if usage.total.cost_unknown_requests:
        cost += f" ({usage.total.cost_unknown_requests} request(s) of unknown price counted as 0)"
    tokens = f"{usage.this_run.prompt_tokens}+{usage.this_run.completion_tokens} now"
    if console.is_terminal:
        table = Table(
            title=f"{manifest.kind} · {manifest.spec} · shard {manifest.shard['index']}/{manifest.shard['count']}"
        )
        table.add_column("")
        table.add_column("count", justify="right")
        for name, value in lines:
            table.add_row(name, str(value))
        console.print(table)
        console.print(
            f"tokens (prompt+completion): {tokens}; cost: {cost}; retries: {manifest.retries}"
        )
        console.print(f"corpus: {manifest.files['corpus']}\nmanifest: {manifest.files['manifest']}")
    else:
        for name, value in lines:
            print(f"{name}: {value}")
        print(f"tokens: {tokens}\ncost: {cost}\nretries: {manifest.retries}")
        print(f"corpus: {manifest.files['corpus']}\nmanifest: {manifest.files['manifest']}")


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point, under the same one-line error rule as `caml-train`."""
    from caml_evals.cli.errors import command_prog, one_line_argparse, run_cli

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="caml-train", description="Synthetic corpus generation.")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    one_line_argparse(parser)
    commands = [n for a in parser._subparsers._group_actions for n in a.choices]  # type: ignore[union-attr]

    def _main() -> int:
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)

    return run_cli(command_prog("caml-train", argv, commands), _main)


if __name__ == "__main__":
    sys.exit(main())
