"""Pydantic models of the training YAML configs: one stage (`caml-train train`) and the grid
(`caml-train run`).

Why pydantic: a typo in a 40-line YAML should fail before a model is loaded, with the field
named, not after an hour of training. Relative paths in a YAML file are resolved against the
file's folder, so an experiment runs the same from any working directory; `${VAR}` and
`${VAR:-default}` are expanded from the environment first (e.g. `$CAML_EVALS_DATA_DIR`).
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from caml_evals.errors import ConfigError
from caml_evals.scoring.judge_settings import GraderSettings
from caml_evals.strict_yaml import load_yaml

Stage = Literal["text", "instruct", "sft", "pref"]
_SHA = re.compile(r"^[0-9a-f]{40}$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSource(_Strict):
    """Rows for a stage: a local JSONL/parquet file (or folder of them), or a pinned Hub dataset.

    Hub datasets must be pinned to a commit sha: a moving branch silently changes the data
    behind a cached result.
    """

    path: Path | None = None
    hub: str | None = None
    revision: str | None = None
    config: str | None = None
    split: str = "train"

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        if (self.path is None) == (self.hub is None):
            raise ValueError(
                "give exactly one of `path` (local JSONL/parquet) or `hub` (dataset id)"
            )
        if self.hub is not None and not (self.revision and _SHA.match(self.revision)):
            raise ValueError(
                f"hub dataset {self.hub!r} needs `revision:` pinned to a 40-hex commit sha "
                f"(got {self.revision!r})"
            )
        return self

    def describe(self) -> str:
        if self.path is not None:
            return str(self.path)
        return f"{self.hub}@{self.revision}:{self.config or 'default'}/{self.split}"


class LoraSettings(_Strict):
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]


# Names of the pre-TRL trainer: an error naming the TRL/transformers field to use instead (a silent
# alias would keep two spellings of one setting alive, and hash them differently).
RENAMED = {
    "seq_len": "max_length",
    "batch_size": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "epochs": "num_train_epochs",
    "lr_scheduler": "lr_scheduler_type",
    "warmup_ratio": "warmup_steps (a float below 1 is a share of the total steps)",
    "gradient_checkpointing": "activation_checkpointing",
}
# SFTConfig fields caml-train sets itself (from the stage, its seed and its directory).
MANAGED = {
    "output_dir": "the stage directory",
    "seed": "`seed`/`seeds`",
    "data_seed": "`seed`/`seeds`",
    "dataset_text_field": "the stage (`text` rows)",
    "dataset_kwargs": "the stage",
    "model_init_kwargs": "`model`/`attn_implementation` (the model is loaded by caml-train)",
    "resume_from_checkpoint": "the latest complete checkpoint-* of the stage",
    "gradient_checkpointing": "activation_checkpointing",
}


class Hyperparams(BaseModel):
    """How to train; shared by all three stages (overridable per stage in an experiment).

    The named fields below are caml-train's defaults; every other key is passed to TRL's
    `SFTConfig` (and through it transformers' `TrainingArguments`) under its own name, so any
    TRL/transformers setting can be used. Unknown names and bad values (e.g. `lr_scheduler_type:
    foo`) are rejected here, when the config loads, by building the `SFTConfig` they describe:
    an hour of model loading never ends in a typo.
    """

    model_config = ConfigDict(extra="allow")

    # ours: not SFTConfig fields
    lora: LoraSettings | None = LoraSettings()  # null = full fine-tuning (peft_config otherwise)
    attn_implementation: str | None = None  # e.g. flash_attention_2 on GPU; None = model default
    merged_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    keep_checkpoints: bool = False  # delete checkpoint-* once the merged model is written
    on_bad_rows: Literal["error", "skip"] = "error"
    bf16: bool | None = None  # None: on when the GPU supports it (SFTConfig's default is on)
    # SFTConfig fields with caml-train defaults (TRL's differ or suit no CPU run)
    max_length: int = Field(1024, ge=8)  # the packed row length; the truncation length unpacked
    packing: bool = True
    # None: "bfd_split" for documents (a long document is split, never cut), "bfd" (truncate)
    # for conversations (a reply without its question teaches the wrong thing).
    packing_strategy: Literal["bfd", "bfd_split", "wrapped"] | None = None
    # None: True for instruct/sft stages (loss on assistant turns only), False for documents.
    assistant_only_loss: bool | None = None
    learning_rate: float = Field(2e-4, gt=0)
    num_train_epochs: float = Field(1.0, gt=0)
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_train_batch_size: int = Field(8, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    warmup_steps: float = Field(0.03, ge=0)  # below 1: a share of the total steps
    weight_decay: float = Field(0.0, ge=0)
    lr_scheduler_type: str = "cosine"
    max_grad_norm: float = 1.0
    activation_checkpointing: bool = False
    save_steps: int | float = Field(200, gt=0)  # below 1: a share of the total steps
    save_total_limit: int | None = 2
    logging_steps: int = Field(10, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _names(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, new in RENAMED.items():
                if old in data:
                    raise ValueError(f"hparams.{old} is now hparams.{new} (TRL's name)")
        return data

    @model_validator(mode="after")
    def _valid_for_trl(self) -> Hyperparams:
        validate_trl_fields(self)
        return self

    def trl_fields(self) -> dict[str, Any]:
        """The SFTConfig keyword arguments these hparams set (ours removed)."""
        ours = {"lora", "attn_implementation", "merged_dtype", "keep_checkpoints", "on_bad_rows"}
        return {k: v for k, v in self.model_dump().items() if k not in ours}


def validate_trl_fields(hp: Hyperparams) -> None:
    """Build the SFTConfig the hparams describe (for a text stage) and fail as a config error.

    Constructing it runs transformers' own checks (scheduler names, strategies, conflicting
    precision flags); it writes nothing and loads no model.
    """
    import dataclasses

    from trl import SFTConfig

    known = {f.name for f in dataclasses.fields(SFTConfig)}
    deferred = set()  # preference-trainer fields: checked by the stage (check_stage_hparams)
    for name in hp.model_extra or {}:
        if name in MANAGED:
            raise ValueError(f"hparams.{name} is set by caml-train from {MANAGED[name]}")
        if name not in known and name in pref_only_fields():
            deferred.add(name)
        elif name not in known:
            close = difflib.get_close_matches(name, sorted(known | pref_only_fields()), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(
                f"hparams.{name} is not a TRL SFTConfig / transformers TrainingArguments "
                f"field (nor a DPOConfig/KTOConfig/CPOConfig one){hint}"
            )
    kwargs = {k: v for k, v in hp.trl_fields().items() if k not in deferred}
    kwargs["bf16"] = False  # the hardware decides later; here only names and values count
    kwargs["packing_strategy"] = kwargs["packing_strategy"] or "bfd"
    kwargs["assistant_only_loss"] = bool(kwargs["assistant_only_loss"])
    kwargs.setdefault("pad_to_multiple_of", None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            SFTConfig(
                output_dir=str(Path(tempfile.gettempdir()) / "caml-train-validate"),
                report_to="none",
                **kwargs,
            )
    except (ValueError, TypeError) as ex:
        raise ValueError(f"hparams rejected by TRL's SFTConfig: {ex}") from ex


# ---------------------------------------------------------------------------- pref stages
# The losses of TRL 1.16's preference trainers (tests check these lists against TRL's own docs).
DPO_LOSSES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)  # fmt: skip
KTO_LOSSES = ("kto", "apo_zero_unpaired")  # KTOTrainer, on the pairs unpaired
CPO_LOSSES = ("simpo",)  # trl.experimental.cpo.CPOTrainer: reference-free (SimPO)
PREF_MANAGED = {
    "beta": "pref.beta",
    "loss_type": "pref.loss_type",
    "loss_weights": "pref.loss_weights",
}


def _pref_config_classes() -> dict[str, type]:
    import warnings

    from trl import DPOConfig, KTOConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TRLExperimentalWarning: CPO lives in trl.experimental
        from trl.experimental.cpo import CPOConfig
    return {"dpo": DPOConfig, "kto": KTOConfig, "cpo": CPOConfig}


def pref_only_fields() -> set[str]:
    """Fields of TRL's preference configs that SFTConfig lacks (beta, precompute_ref_log_probs,
    desirable_weight, simpo_gamma, ...): valid in hparams of pref stages only."""
    import dataclasses

    from trl import SFTConfig

    sft = {f.name for f in dataclasses.fields(SFTConfig)}
    pref = {f.name for c in _pref_config_classes().values() for f in dataclasses.fields(c)}
    return pref - sft


class PrefOptions(_Strict):
    """How a `pref` stage optimises preferences (TRL's DPOTrainer, KTOTrainer or CPOTrainer).

    `loss_type` goes to DPOConfig.loss_type (one name or a list combined with `loss_weights`);
    `kto`/`apo_zero_unpaired` train TRL's KTOTrainer on the pairs unpaired into desirable and
    undesirable examples; `simpo` trains TRL's (experimental) CPOTrainer with the SimPO loss, which
    uses no reference model. `reference`: None = the stage's own input model (with LoRA, TRL's
    adapter-disabled model; full fine-tuning, a frozen copy), or a checkpoint directory.
    """

    loss_type: str | list[str] = "sigmoid"
    beta: float = Field(0.1, gt=0)
    loss_weights: list[float] | None = None
    reference: Path | None = None
    reference_free: bool = False

    def losses(self) -> list[str]:
        return [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)

    def trainer_kind(self) -> Literal["dpo", "kto", "cpo"]:
        first = self.losses()[0]
        return "kto" if first in KTO_LOSSES else "cpo" if first in CPO_LOSSES else "dpo"

    def uses_reference(self) -> bool:
        return self.trainer_kind() != "cpo"

    @model_validator(mode="after")
    def _known_losses(self) -> PrefOptions:
        losses = self.losses()
        if not losses:
            raise ValueError("pref.loss_type: give at least one loss")
        available = [*DPO_LOSSES, *KTO_LOSSES, *CPO_LOSSES]
        for name in losses:
            if name not in available:
                close = difflib.get_close_matches(name, available, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ValueError(
                    f"pref.loss_type {name!r} is not a loss of TRL's preference trainers{hint}; "
                    f"available: DPOTrainer {', '.join(DPO_LOSSES)}; KTOTrainer "
                    f"{', '.join(KTO_LOSSES)}; CPOTrainer {', '.join(CPO_LOSSES)}"
                )
        if len(losses) > 1 and not set(losses) <= set(DPO_LOSSES):
            raise ValueError(
                f"pref.loss_type {losses}: only DPOTrainer losses combine "
                f"({', '.join(DPO_LOSSES)}); kto and simpo run alone"
            )
        if self.loss_weights is not None and len(self.loss_weights) != len(losses):
            raise ValueError(
                f"pref.loss_weights has {len(self.loss_weights)} weight(s) for {len(losses)} loss(es)"
            )
        if self.loss_weights is not None and self.trainer_kind() != "dpo":
            raise ValueError("pref.loss_weights combine DPOTrainer losses; kto/simpo take none")
        if self.reference_free and self.uses_reference():
            raise ValueError(
                f"pref.reference_free: loss {'+'.join(losses)} needs a reference model (TRL 1.16's "
                f"DPOTrainer and KTOTrainer always use one); the reference-free loss is "
                f"{', '.join(CPO_LOSSES)} (TRL's CPOTrainer)"
            )
        if self.reference is not None and not self.uses_reference():
            raise ValueError(f"pref.reference: {losses[0]} uses no reference model; drop it")
        return self


def pref_trl_kwargs(hp: Hyperparams, pref: PrefOptions) -> tuple[type, dict[str, Any]]:
    """The TRL config class of a pref stage and its keyword arguments from hparams + pref.

    The SFT-only fields (packing, packing_strategy, assistant_only_loss) do not apply and are
    left out; a field the trainer's config lacks, or one `pref:` sets, is an error naming it.
    """
    import dataclasses

    kind = pref.trainer_kind()
    cls = _pref_config_classes()[kind]
    known = {f.name for f in dataclasses.fields(cls)}
    extra = hp.model_extra or {}
    for name in extra:
        if name in PREF_MANAGED:
            raise ValueError(f"hparams.{name} of a pref stage is set by {PREF_MANAGED[name]}")
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(
                f"hparams.{name} is not a field of TRL's {cls.__name__} (the trainer of "
                f"pref.loss_type {pref.losses()[0]}){hint}"
            )
    if kind == "kto" and hp.per_device_train_batch_size < 2:
        raise ValueError(
            "pref.loss_type kto estimates its KL term within a batch: "
            "hparams.per_device_train_batch_size must be at least 2"
        )
    sft_only = {"packing", "packing_strategy", "assistant_only_loss"}
    kwargs = {k: v for k, v in hp.trl_fields().items() if k not in sft_only}
    kwargs["beta"] = pref.beta
    if kind == "dpo":
        kwargs["loss_type"] = pref.losses()
        kwargs["loss_weights"] = pref.loss_weights
    else:
        kwargs["loss_type"] = pref.losses()[0]
    if kind == "cpo":
        kwargs.setdefault("cpo_alpha", 0.0)  # pure SimPO (no behaviour-cloning term) unless set
    else:
        kwargs.setdefault("pad_to_multiple_of", None)
    return cls, kwargs


def check_stage_hparams(hp: Hyperparams, stage: Stage, pref: PrefOptions | None) -> None:
    """Stage-dependent hparams checks: a pref stage's build the TRL config they describe (as
    validate_trl_fields does for SFTConfig); other stages refuse the preference-only fields."""
    if stage != "pref":
        for name in hp.model_extra or {}:
            if name in pref_only_fields():
                raise ValueError(
                    f"hparams.{name} is a preference-trainer field (DPOConfig/KTOConfig/"
                    f"CPOConfig), for `stage: pref` only"
                )
        return
    assert pref is not None
    cls, kwargs = pref_trl_kwargs(hp, pref)
    kwargs["bf16"] = False  # the hardware decides later; here only names and values count
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls(
                output_dir=str(Path(tempfile.gettempdir()) / "caml-train-validate"),
                report_to="none",
                **kwargs,
            )
    except (ValueError, TypeError) as ex:
        raise ValueError(f"hparams rejected by TRL's {cls.__name__}: {ex}") from ex


class Replay(_Strict):
    """Replay (a preservation strategy): mix a share of the arm's own documents into an SFT stage.

    The stage's own rows (its `n_samples`) are all kept and `round(n * fraction / (1 -
    fraction))` documents are added, drawn as a seeded nested subset of `documents` (the ones
    for n=2500 are inside those for n=5000), so documents are `fraction` of the mixed rows and
    the SFT exposure is that of the same stage without replay. Documents train on every token
    (as in a text stage), conversations on the assistant turns only; too few documents is an
    error naming the numbers. The mix is a seeded shuffle of the combined rows.
    """

    documents: DataSource  # the arm's document corpus
    fraction: float = Field(gt=0, lt=1)  # share of documents in the mixed rows
    seed: int | None = None  # None: the stage's seed


class TrainConfig(_Strict):
    """One stage: train `model` on `data`, write `<output_dir>/merged` + run card."""

    stage: Stage
    model: str  # "smollm2" (embedded), a local checkpoint dir, or a Hub model id
    model_revision: str | None = None
    data: DataSource
    n_samples: int | None = Field(None, gt=0)  # seeded subset (nested: N=2500 is inside N=5000)
    output_dir: Path
    seed: int = 0
    hparams: Hyperparams = Field(default_factory=Hyperparams)
    # Stop once this many loss-bearing tokens were trained (epochs are added as needed): arms
    # trained to the same budget see the same amount of supervision.
    target_token_budget: int | None = Field(None, gt=0)
    # Count the tokens of sentences that contain one of these phrases (value-relevant tokens).
    value_keywords: list[str] | None = None
    replay: Replay | None = None  # sft/instruct stages: a share of documents mixed in
    pref: PrefOptions | None = None  # stage pref: loss, beta, reference (required there)

    @model_validator(mode="after")
    def _pref_stage(self) -> TrainConfig:
        if self.stage == "pref" and self.pref is None:
            raise ValueError("stage pref needs a `pref:` block (loss_type, beta, reference)")
        if self.stage != "pref" and self.pref is not None:
            raise ValueError(f"`pref:` options are for stage pref, not {self.stage}")
        if self.stage == "pref" and self.target_token_budget is not None:
            raise ValueError("target_token_budget counts SFT targets; a pref stage takes none")
        check_stage_hparams(self.hparams, self.stage, self.pref)
        return self

    @model_validator(mode="after")
    def _replay_only_for_conversations(self) -> TrainConfig:
        if self.replay is None:
            return self
        if self.stage not in ("sft", "instruct"):
            why = (
                "a text stage already trains on documents"
                if self.stage == "text"
                else "a document has no rejected side in a preference pair"
            )
            raise ValueError(f"replay is for sft/instruct stages, not this one: {why}")
        return self


class Budget(_Strict):
    """Every arm stage trains to the same budget: loss-bearing tokens, or optimizer steps."""

    target_tokens: int | None = Field(None, gt=0)
    steps: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> Budget:
        if (self.target_tokens is None) == (self.steps is None):
            raise ValueError("budget: give exactly one of `target_tokens` or `steps`")
        return self


class CorpusSource(_Strict):
    """An arm's corpus: an existing file, or generated from a spec by `caml_train.generate`."""

    path: Path | None = None
    # A generation spec: a shipped spec name (e.g. "animal_welfare") or a YAML path (relative to
    # this file). The corpus is generated once into <output_dir>/corpora/<arm>/ (responses cached).
    generate: str | None = None
    # Options of caml_train.generate.api.generate_corpus: model (required), n, seed, ...
    generate_args: dict[str, Any] = {}
    # Instruction arms only: derive the Q/A pairs from another (text) arm's corpus, one pair set per
    # document, so the instruction-tuned arm carries the same content as the document-tuned one.
    documents_from: str | None = None

    @model_validator(mode="after")
    def _one(self) -> CorpusSource:
        if (self.path is None) == (self.generate is None):
            raise ValueError("corpus: give exactly one of `path` or `generate` (a spec YAML)")
        if self.documents_from is not None and self.generate is None:
            raise ValueError("corpus.documents_from needs `generate` (the spec of the Q/A pairs)")
        if self.documents_from is not None and "documents" in self.generate_args:
            raise ValueError("give either corpus.documents_from or generate_args.documents")
        return self


class Arm(_Strict):
    """One arm of the experiment. `stage: null` is the untouched base model."""

    stage: Literal["text", "instruct"] | None
    corpus: CorpusSource | None = None
    hparams: dict[str, Any] = {}  # overrides on top of the experiment's stage hparams
    # A scaling sweep: the arm is trained once per size on nested seeded subsets of its corpus
    # (the 250 rows are the first 250 of the 500); its rows in the tables are `<arm>@<n>`.
    corpus_sizes: list[int] | None = None
    # Preservation strategies (measured as arms, not assumed). `replay`: the arm's SFT stages mix
    # in a share of its own documents (TrainConfig.replay). `freeze_adapter`: the stages after
    # the arm train a fresh LoRA adapter on top of the frozen arm checkpoint, even when the
    # experiment fine-tunes them fully. `kl_to: arm`: the arm's pref stages use the arm checkpoint
    # (not their SFT parent) as the DPO reference, a KL anchor to the document-tuned model; TRL's
    # SFTTrainer has no KL-to-reference term, so SFT stages are not affected.
    replay: ReplayOption | None = None
    freeze_adapter: bool = False
    kl_to: Literal["arm"] | None = None

    @field_validator("corpus_sizes")
    @classmethod
    def _sizes(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(n <= 0 for n in v) or len(set(v)) != len(v)):
            raise ValueError("corpus_sizes must be distinct positive integers")
        return sorted(v) if v else v

    @model_validator(mode="after")
    def _corpus_needed(self) -> Arm:
        if self.stage is not None and self.corpus is None:
            raise ValueError(f"an arm with stage {self.stage!r} needs a `corpus`")
        if self.stage is None and self.corpus is not None:
            raise ValueError("the base arm (stage: null) takes no corpus")
        if self.stage is None and self.corpus_sizes:
            raise ValueError("the base arm (stage: null) takes no corpus_sizes")
        if self.stage is None and self.kl_to is not None:
            raise ValueError("the base arm (stage: null) has no arm checkpoint to anchor to")
        if self.stage is None and self.replay is not None:
            raise ValueError("the base arm (stage: null) has no documents to replay")
        if self.replay is not None and self.stage != "text":
            raise ValueError(
                "replay mixes an arm's documents into SFT: it needs a `stage: text` arm"
            )
        return self


class ReplayOption(_Strict):
    """An arm's replay: `fraction` of every SFT stage's rows after it are the arm's documents
    (see `Replay`: the SFT rows are all kept and documents added)."""

    fraction: float = Field(gt=0, lt=1)
    seed: int | None = None  # None: the stage's seed


class PrefSettings(_Strict):
    """The preference stage of the grid: after each SFT stage (`after: sft`, the default), after
    each arm stage (`arm`), or both (`all`). Pairs come from a preference set (`data`, subsets of
    `sizes` pairs) or are built by RLAIF from the parent checkpoint (`rlaif`: `n_prompts` prompts
    from `prompts`, default the SFT data, judged by a general constitution)."""

    data: DataSource | None = None
    sizes: list[int] | None = None  # pairs per stage (a preference set); RLAIF: [n_prompts]
    rlaif: Any = None  # caml_train.rlaif.RlaifSettings (validated below: it imports this module)
    prompts: DataSource | None = None  # RLAIF prompts; None: sft.data
    after: Literal["sft", "arm", "all"] = "sft"
    loss_type: str | list[str] = "sigmoid"
    beta: float = Field(0.1, gt=0)
    loss_weights: list[float] | None = None
    hparams: dict[str, Any] = {}

    @model_validator(mode="after")
    def _one_source(self) -> PrefSettings:
        if (self.data is None) == (self.rlaif is None):
            raise ValueError("pref: give exactly one of `data` (a preference set) or `rlaif`")
        if self.rlaif is not None:
            from .rlaif import RlaifSettings

            self.rlaif = RlaifSettings.model_validate(
                self.rlaif.model_dump() if isinstance(self.rlaif, BaseModel) else self.rlaif
            )
            if self.sizes is not None:
                raise ValueError("pref.sizes is for a preference set; RLAIF takes rlaif.n_prompts")
        elif self.sizes is not None and (
            not self.sizes
            or any(n <= 0 for n in self.sizes)
            or len(set(self.sizes)) != len(self.sizes)
        ):
            raise ValueError("pref sizes must be distinct positive integers")
        self.options()  # the losses are checked now
        return self

    def options(self, reference: Path | None = None) -> PrefOptions:
        return PrefOptions(
            loss_type=self.loss_type,
            beta=self.beta,
            loss_weights=self.loss_weights,
            reference=reference,
        )

    def size_list(self) -> list[int | None]:
        """Pair counts, one stage each: the sizes, or None (all pairs / the RLAIF pairs)."""
        if self.rlaif is not None or not self.sizes:
            return [None]
        return sorted(self.sizes)


class SftSettings(_Strict):
    data: DataSource
    sizes: list[int] = [2500, 5000]
    hparams: dict[str, Any] = {}
    # Decay curves: every SFT stage keeps a checkpoint every `eval_every` SFT samples trained
    # on (rounded up to whole optimizer steps); each is merged and scored with every eval task.
    eval_every: int | None = Field(None, gt=0)

    @field_validator("sizes")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(n <= 0 for n in v) or len(set(v)) != len(v):
            raise ValueError("sft sizes must be distinct positive integers")
        return sorted(v)


class GraderSpec(_Strict, GraderSettings):
    """The grader of every eval. Its generation settings are the rubric tasks' own judge
    settings, under the same names (`grader_temperature`, `grader_max_tokens`, `grader_seed`,
    `grader_reasoning_effort`, `grader_max_retries`, `grader_max_connections`; None = the
    provider's default), so a YAML grid and `-T grader_...` mean the same thing."""

    model: str = "caml/smollm2"
    args: dict[str, Any] = {}  # model args, e.g. {reply: "..."} for scripted/ graders in tests
    max_tokens: int | None = None  # the grader's own limit (eval.max_tokens is the graded model's)

    @model_validator(mode="after")
    def _one_max_tokens(self) -> GraderSpec:
        if self.max_tokens is not None and self.grader_max_tokens not in (None, self.max_tokens):
            raise ValueError("eval.grader: max_tokens and grader_max_tokens disagree; give one")
        return self

    def generate_config(self) -> Any:
        """The GenerateConfig of the grader model (its settings; max_tokens either name)."""
        settings = self.model_dump(include=set(GraderSettings.model_fields))
        if settings["grader_max_tokens"] is None:
            settings["grader_max_tokens"] = self.max_tokens
        return GraderSettings(**settings).generate_config()


class EvalTask(_Strict):
    """One benchmark to score every checkpoint on, and which score goes in the results table.

    Several entries may name the same task (e.g. AHB `overall` and one dimension): entries that
    differ only in `score_key`/`scorer`/`label` share one eval log (it is run once).
    """

    task: str = "caml_evals/ahb"
    args: dict[str, Any] = {}
    limit: int | None = None
    # which key of a dict-valued score goes in the table; default: the task card's headline
    # (AHB overall, TAC welfare, StrongREJECT score, power_seeking risky, ...), else `overall`
    score_key: str | None = None
    scorer: str | None = None  # which scorer, when a task has several
    label: str | None = None  # the table's heading; default: task, plus score key if not headline

    @model_validator(mode="after")
    def _headline_by_default(self) -> EvalTask:
        if self.score_key is None:
            self.score_key = self.headline_key()
        return self

    def headline_key(self) -> str:
        """The score key of the task card's first headline metric (`overall` without a card)."""
        from caml_evals.cards import find_card
        from caml_evals.stats.headline import headline_metrics, key_of_metric

        if find_card(self.task) is None:
            return "overall"
        return key_of_metric(headline_metrics(self.task)[0])

    def run_identity(self) -> dict[str, Any]:
        """What decides the eval log (not which key of it is read)."""
        return {"task": self.task, "args": self.args, "limit": self.limit}

    def heading(self) -> str:
        if self.label:
            return self.label
        if self.score_key in ("overall", self.headline_key()):
            return self.task
        return f"{self.task} · {self.score_key}"


class EvalSettings(_Strict):
    tasks: list[EvalTask] = [EvalTask()]
    grader: GraderSpec | None = GraderSpec()
    data_dir: Path | None = None  # passed as task arg data_dir; relative to the YAML file
    max_tokens: int | None = None
    epochs: int | None = Field(
        None, gt=0
    )  # Inspect's --epochs for every task; None: the task's own
    seed: int = 0
    model_args: dict[str, Any] = {}
    # How checkpoints are served to Inspect: `auto` is vLLM (`vllm/<path>`) when vLLM is
    # installed and a GPU is present, else the local provider (`caml/<path>`, `hf/<hub id>`).
    provider: Literal["auto", "vllm", "hf", "caml"] = "auto"
    # Probes on every local checkpoint (caml_train.probes), cached by stage key: `depth` is the
    # per-token KL from the base model along the checkpoint's answers, `persona` its answers'
    # projection on a compassion direction taken from the base model.
    probes: list[Literal["depth", "persona"]] = []
    probe_questions: int = Field(8, gt=0)  # the first eval task's first N questions
    probe_max_tokens: int = Field(32, gt=0)  # greedy answer tokens per question

    @field_validator("probes")
    @classmethod
    def _distinct_probes(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("eval.probes: name each probe once")
        return v


class ResultsSettings(_Strict):
    reference_arms: list[str] = ["control", "base"]
    ci: float = 0.95
    n_resamples: int = 10_000
    seed: int = 0


class ExperimentConfig(_Strict):
    """The whole grid: arms x (arm stage, then SFT at each size), every checkpoint evaluated."""

    name: str
    base_model: str = "smollm2"
    base_model_revision: str | None = None
    output_dir: Path
    seed: int = 0
    # Training replicates: every stage is trained once per seed (its key includes the seed) and
    # the results pool the seeds (two-level bootstrap: seeds, then questions). None: [seed].
    seeds: list[int] | None = None
    # Token-match the arms: every arm stage trains to this budget (SFT stages are unaffected).
    budget: Budget | None = None
    # Value-relevant tokens in run cards and tables: sentences containing one of these phrases;
    # a string names a generation spec (shipped name or YAML path) whose key_phrases are used.
    # The same list counts every arm, so the control arm is measured against the same values.
    value_keywords: list[str] | str | None = None
    hparams: Hyperparams = Field(default_factory=Hyperparams)
    stage_hparams: dict[Stage, dict[str, Any]] = {}
    arms: dict[str, Arm]
    sft: SftSettings | None = None
    pref: PrefSettings | None = None
    eval: EvalSettings | None = EvalSettings()
    results: ResultsSettings = ResultsSettings()
    launcher: str | None = (
        None  # e.g. "accelerate launch --num_processes 8": train stages as subprocesses
    )

    @model_validator(mode="after")
    def _distinct_headings(self) -> ExperimentConfig:
        if self.eval is not None:
            headings = [t.heading() for t in self.eval.tasks]
            dup = {h for h in headings if headings.count(h) > 1}
            if dup:
                raise ValueError(
                    f"eval.tasks: give a distinct `label` to entries headed {sorted(dup)} "
                    "(each entry is one table of the results)"
                )
        return self

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        return v

    def arm_variants(self) -> list[tuple[str, str, int | None]]:
        """(row name, arm, corpus size): one per arm, or one per size of a scaling sweep."""
        out: list[tuple[str, str, int | None]] = []
        for name, arm in self.arms.items():
            if arm.corpus_sizes:
                out += [(f"{name}@{n}", name, n) for n in arm.corpus_sizes]
            else:
                out.append((name, name, None))
        return out

    def seed_list(self) -> list[int]:
        return list(self.seeds) if self.seeds else [self.seed]

    def keyword_list(self) -> list[str] | None:
        """`value_keywords` as phrases (a spec's key_phrases when it names a spec)."""
        if self.value_keywords is None or isinstance(self.value_keywords, list):
            return self.value_keywords
        from caml_train.generate.spec import load_spec

        try:
            return list(load_spec(self.value_keywords).key_phrases)
        except Exception as ex:  # noqa: BLE001 - any failure to read the spec is the user's
            raise ConfigError(
                f"value_keywords: cannot read spec {self.value_keywords!r}: {ex}"
            ) from None

    @model_validator(mode="after")
    def _stage_hparams_valid(self) -> ExperimentConfig:
        """Every stage's merged hparams are checked now, not when the grid reaches it."""
        for name, arm in self.arms.items():
            if arm.stage is not None:
                try:
                    self.hparams_for(arm.stage, name)
                except ValidationError as ex:
                    raise ValueError(f"arm {name!r}: {_validation_message(ex)}") from None
        if self.sft is not None:
            try:
                hp = self.hparams_for("sft")
            except ValidationError as ex:
                raise ValueError(f"sft: {_validation_message(ex)}") from None
            if self.sft.eval_every is not None and hp.max_steps > 0:
                raise ValueError(
                    "sft.eval_every counts SFT samples, which hparams.max_steps does not fix "
                    f"(max_steps={hp.max_steps} for sft stages): train the sft stages by "
                    "num_train_epochs (max_steps: -1)"
                )
        if self.pref is not None:
            if self.pref.after == "sft" and self.sft is None:
                raise ValueError("pref.after: sft needs an `sft:` section (or use after: arm)")
            try:
                check_stage_hparams(self.hparams_for("pref"), "pref", self.pref.options())
            except ValidationError as ex:
                raise ValueError(f"pref: {_validation_message(ex)}") from None
        for name, arm in self.arms.items():
            if arm.kl_to is not None and self.pref is None:
                raise ValueError(
                    f"arm {name!r}: kl_to anchors the pref stages (DPO's reference); the "
                    "experiment has no `pref:` section (TRL's SFTTrainer takes no KL term)"
                )
            if (arm.freeze_adapter or arm.replay) and self.sft is None and self.pref is None:
                raise ValueError(
                    f"arm {name!r}: freeze_adapter/replay act on the stages after the arm; "
                    "the experiment has no `sft:` or `pref:` section"
                )
            if arm.replay is not None and self.sft is None:
                raise ValueError(f"arm {name!r}: replay mixes documents into SFT: add `sft:`")
        return self

    @field_validator("arms")
    @classmethod
    def _arm_names(cls, v: dict[str, Arm]) -> dict[str, Arm]:
        if not v:
            raise ValueError("at least one arm is needed")
        for name in v:
            if not re.match(r"^[A-Za-z0-9_.-]+$", name):
                raise ValueError(f"arm name {name!r}: use letters, digits, '_', '-', '.'")
        for name, arm in v.items():
            source = arm.corpus.documents_from if arm.corpus else None
            if source is None:
                continue
            if arm.stage != "instruct":
                raise ValueError(f"arm {name!r}: corpus.documents_from is for instruct arms")
            if source not in v or v[source].stage != "text":
                raise ValueError(
                    f"arm {name!r}: corpus.documents_from={source!r} must name a `stage: text` arm"
                )
        return v

    def hparams_for(self, stage: Stage, arm: str | None = None) -> Hyperparams:
        """Experiment defaults, then the stage's overrides, then the arm's (deep-merged)."""
        merged = self.hparams.model_dump()
        merged = deep_merge(merged, self.stage_hparams.get(stage, {}))
        if stage == "sft" and self.sft is not None:
            merged = deep_merge(merged, self.sft.hparams)
        elif stage == "pref" and self.pref is not None:
            merged = deep_merge(merged, self.pref.hparams)
        elif arm is not None:
            merged = deep_merge(merged, self.arms[arm].hparams)
        return Hyperparams.model_validate(merged)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; lists and scalars in `override` replace the base's.

    Shared by hparams overrides here and `extends:` in generation specs.
    """
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def expand_env(value: Any) -> Any:
    """Expand `${VAR}` / `${VAR:-default}` in every string of a parsed YAML tree."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            env = os.environ.get(m.group(1))
            if env not in (None, ""):
                return env
            if m.group(2) is not None:
                return m.group(2)
            raise ConfigError(
                f"environment variable {m.group(1)} is not set (used as ${{{m.group(1)}}})"
            )

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    return value


M = TypeVar("M", bound=BaseModel)


def _resolve_paths(model: BaseModel, root: Path) -> None:
    """Make every relative Path field absolute against the YAML file's folder (in place)."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(model, CorpusSource) and name == "generate" and isinstance(value, str):
            if value.endswith((".yaml", ".yml")) and not Path(value).is_absolute():
                object.__setattr__(model, name, str((root / value).resolve()))
            continue
        if isinstance(value, Path) and not value.is_absolute():
            object.__setattr__(model, name, (root / value.expanduser()).resolve())
        elif isinstance(value, BaseModel):
            _resolve_paths(value, root)
        elif isinstance(value, dict):
            for v in value.values():
                if isinstance(v, BaseModel):
                    _resolve_paths(v, root)
        elif isinstance(value, list):
            for v in value:
                if isinstance(v, BaseModel):
                    _resolve_paths(v, root)


def load_config(
    path: str | os.PathLike[str], cls: type[M], overrides: dict[str, Any] | None = None
) -> M:
    """Read YAML, expand env vars, apply dotted `overrides`, validate, resolve relative paths."""
    path = Path(path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError as ex:
        raise ConfigError(f"config file not found: {path}") from ex
    except IsADirectoryError as ex:
        raise ConfigError(f"{path}: is a directory, not a YAML config file") from ex
    except PermissionError as ex:
        raise ConfigError(f"{path}: cannot be read (permission denied)") from ex
    except UnicodeDecodeError as ex:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {ex.start}: {ex.reason}); save it as UTF-8"
        ) from ex
    except yaml.YAMLError as ex:
        raise ConfigError(f"{path}: not valid YAML: {_one_line(str(ex))}") from ex
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    raw = expand_env(raw)
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    try:
        model = cls.model_validate(raw)
    except ValidationError as ex:  # keep its field-by-field message, on one line per field
        raise ConfigError(f"{path}: {_validation_message(ex)}") from ex
    except ValueError as ex:
        raise ConfigError(f"{path}: {ex}") from ex
    _resolve_paths(model, path.resolve().parent)
    return model


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """`hparams.lora.r=8` style override (values parsed as YAML scalars by the caller)."""
    keys = dotted.split(".")
    if not all(keys):
        raise ConfigError(f"--set {dotted}=...: empty key in the dotted path")
    node = tree
    for k in keys[:-1]:
        if node.get(k) is None:
            node[k] = {}
        node = node[k]
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}=...: {k} is not a mapping in the config")
    node[keys[-1]] = value


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`--set key.path=value` items; each value is parsed as YAML (`[1, 2]`, `null`, `1e-4`)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as ex:
            raise ConfigError(
                f"--set {item!r}: the value is not valid YAML ({_one_line(str(ex))}); quote it"
            ) from ex
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _validation_message(ex: ValidationError) -> str:
    """Pydantic's errors as `field.path: message; ...` (one line, no URLs)."""
    parts = []
    for err in ex.errors():
        where = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)
