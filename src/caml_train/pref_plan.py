"""The grid's preference stages and preservation arms: planning and the inputs made at run time.

    arm --sft(N)--> ckpt --pref(M)--> ckpt      column `sft-N+pref-M` (`pref.after: sft`)
    arm --pref(M)--> ckpt                        column `pref-M`       (`pref.after: arm`)

A pref stage is content-addressed like every stage (parent key, pairs identity, hparams, losses,
reference, seed). Its pairs are a pinned preference set (`pref.data`, nested subsets of
`pref.sizes` pairs), or RLAIF pairs built from the parent checkpoint just before the stage trains
(`pref.rlaif`; the answers and judge replies are cached in `<stage>/rlaif/`, so a killed grid
resumes without a repeated call, and a stage whose RLAIF made no pair fails with its counts).

Preservation strategies change the stages after an arm, and so their keys:
- `replay`: the arm's SFT stages mix in a share of its documents (`TrainConfig.replay`);
- `freeze_adapter`: the stages after the arm train a LoRA adapter on the frozen arm checkpoint
  (when the experiment already trains them with LoRA on the merged checkpoint, that is what it
  does anyway: the hparams, and so the keys, are then unchanged and the stages are shared);
- `kl_to: arm`: the arm's pref stages take the arm checkpoint as DPO's reference model.
Why a module of its own: `experiment.py` plans arms and SFT; these rules are the issue's own and
read better together.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import DataSource, ExperimentConfig, LoraSettings, Replay, TrainConfig

if TYPE_CHECKING:
    from .experiment import StagePlan

RLAIF_DIR = "rlaif"
PAIRS_FILE = "pairs.jsonl"


def preserved(config: ExperimentConfig, st: StagePlan) -> StagePlan:
    """An SFT stage with its arm's preservation options applied (key changed only if they
    change what is trained)."""
    from .experiment import _hash, corpus_identity, corpus_path
    from .train import MERGED

    arm = config.arms[st.config_arm]
    assert st.train_config is not None and st.directory is not None
    changes: dict[str, Any] = {}
    update: dict[str, Any] = {}
    hp = _frozen_arm_hparams(st.train_config.hparams, arm.freeze_adapter)
    if hp is not st.train_config.hparams:
        update["hparams"] = hp
        changes["freeze_adapter"] = hp.lora.model_dump() if hp.lora else None
    if arm.replay is not None:
        update["replay"] = Replay(
            documents=DataSource(path=corpus_path(config, st.config_arm, generate=False)),
            fraction=arm.replay.fraction,
            seed=arm.replay.seed,
        )
        changes["replay"] = {
            "documents": corpus_identity(config, st.config_arm),
            "fraction": arm.replay.fraction,
            "seed": arm.replay.seed,
        }
    if not changes:
        return st
    key = _hash({"stage": st.key, "preserve": changes})
    directory = st.directory.with_name(f"sft-{key[:16]}")
    st.key, st.directory = key, directory
    st.model_spec = str(directory / MERGED)
    st.train_config = st.train_config.model_copy(update={**update, "output_dir": directory})
    return st


def _frozen_arm_hparams(hp: Any, freeze: bool) -> Any:
    if not freeze or hp.lora is not None:
        return hp
    return hp.model_copy(update={"lora": LoraSettings()})


def pref_parents(config: ExperimentConfig, root: StagePlan, sft: list[StagePlan]) -> list[Any]:
    """The stages a pref stage follows, by `pref.after`."""
    assert config.pref is not None
    after = config.pref.after
    return ([root] if after in ("arm", "all") else []) + (sft if after in ("sft", "all") else [])


def pref_stage(
    config: ExperimentConfig, parent: StagePlan, root: StagePlan, size: int | None
) -> StagePlan:
    """A pref stage after `parent` (root: the arm's own stage, the `kl_to: arm` reference)."""
    from .experiment import ARM_STAGE, StagePlan, _data_identity, _hash
    from .train import MERGED

    pref = config.pref
    assert pref is not None
    arm = config.arms[parent.config_arm]
    hp = _frozen_arm_hparams(config.hparams_for("pref"), arm.freeze_adapter)
    reference = Path(root.model_spec) if arm.kl_to == "arm" else None
    options = pref.options(reference)
    if pref.rlaif is not None:
        prompts = pref.prompts or (config.sft.data if config.sft else None)
        if prompts is None:
            from caml_evals.errors import ConfigError

            raise ConfigError("pref.rlaif needs `pref.prompts` (there is no sft.data to take)")
        identity: dict[str, Any] = {
            "rlaif": pref.rlaif.model_dump(mode="json", exclude={"max_connections"}),
            "prompts": _data_identity(prompts),
        }
    else:
        assert pref.data is not None
        identity = _data_identity(pref.data)
    key = _hash(
        {
            "stage": "pref",
            "parent": parent.key,
            "data": identity,
            "n": size,
            "hparams": hp.model_dump(mode="json"),
            "options": options.model_dump(mode="json", exclude={"reference"}),
            "reference": root.key if reference is not None else None,
            "seed": parent.seed,
        }
    )
    directory = config.output_dir / "stages" / f"pref-{key[:16]}"
    data = pref.data or DataSource(path=directory / RLAIF_DIR / PAIRS_FILE)
    tc = TrainConfig(
        stage="pref",
        model=parent.model_spec,
        model_revision=config.base_model_revision if parent.train_config is None else None,
        data=data,
        n_samples=size,
        output_dir=directory,
        seed=parent.seed,
        hparams=hp,
        pref=options,
        value_keywords=config.keyword_list(),
    )
    link = f"pref-{size}" if size else "pref"
    column = link if parent.column == ARM_STAGE else f"{parent.column}+{link}"
    return StagePlan(
        parent.arm,
        column,
        key,
        str(directory / MERGED),
        tc,
        directory,
        parent.seed,
        replicated=parent.replicated,
        source_arm=parent.source_arm,
        corpus_size=parent.corpus_size,
        parent=parent,
    )


def pref_columns(config: ExperimentConfig, sft_columns: list[str]) -> list[str]:
    """The table columns of the pref stages, after the columns they follow."""
    if config.pref is None:
        return []
    links = [f"pref-{m}" if m else "pref" for m in config.pref.size_list()]
    after = config.pref.after
    out = list(links) if after in ("arm", "all") else []
    if after in ("sft", "all"):
        out += [f"{c}+{link}" for c in sft_columns for link in links]
    return out


def prepare_inputs(st: StagePlan, config: ExperimentConfig, say: Any) -> None:
    """Make what a stage after the arm needs before it trains: the replay documents' real path
    (a generated corpus exists only once its arm ran) and a pref stage's RLAIF pairs."""
    from .experiment import corpus_path

    tc = st.train_config
    assert tc is not None
    if tc.replay is not None:
        documents = DataSource(path=corpus_path(config, st.config_arm, generate=True))
        st.train_config = tc.model_copy(
            update={"replay": tc.replay.model_copy(update={"documents": documents})}
        )
    if tc.stage == "pref" and config.pref is not None and config.pref.rlaif is not None:
        rlaif_pairs(st, config, say)


def rlaif_pairs(st: StagePlan, config: ExperimentConfig, say: Any) -> None:
    """Build (or finish, from the caches) the RLAIF pairs of a pref stage from its parent, into
    the stage's data file (`<stage>/rlaif/pairs.jsonl`, set when the stage was planned)."""
    from .data import DataError, Problems, load_rows
    from .experiment import ExperimentError, inspect_model_name
    from .rlaif import build_pairs, prompts_from_rows

    pref = config.pref
    assert pref is not None and pref.rlaif is not None and st.directory is not None
    assert st.train_config is not None
    settings = pref.rlaif
    source = pref.prompts or (config.sft.data if config.sft else None)
    assert source is not None
    problems = Problems()
    rows = load_rows(source, problems)
    prompts = prompts_from_rows(rows, settings.n_prompts, settings.seed, problems)
    policy = inspect_model_name(st.train_config.model, "local")
    say(f"stage {st.label}: RLAIF pairs from {policy} ({len(prompts)} prompts)")
    report = build_pairs(policy, prompts, settings, st.directory / RLAIF_DIR, problems=problems)
    if not report.complete:
        raise ExperimentError(
            f"stage {st.label}: RLAIF calls failed ({'; '.join(report.failures[:3])}); re-run "
            "to retry them (answers and judge replies already made are cached)"
        )
    if not report.pairs:
        raise DataError(
            f"stage {st.label}: RLAIF made no preference pair from {report.prompts} prompts "
            f"(unparseable {report.unparseable_prompts}, inconsistent {report.inconsistent}, "
            f"identical {report.identical_answers}, ties {report.ties}); see "
            f"{st.directory / RLAIF_DIR / 'judgements.jsonl'}"
        )
