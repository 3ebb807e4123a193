"""Python entry point used by `caml_train.experiment` to build an arm's corpus from a spec.

`generate_corpus(spec=..., out_dir=..., kind="documents"|"instructions", model=..., **options)` runs the
same pipeline as the CLI and returns the corpus path. It refuses to hand back a partial corpus: when
some requests failed (or are missing in a cache-only run) it raises `GenerationIncomplete`, naming the
manifest; calling it again retries only what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from caml_train.generate.cli import default_cache_dir
from caml_train.generate.client import RetryPolicy
from caml_train.generate.grid import Shard
from caml_train.generate.pipeline import RunConfig, generate_documents, generate_instructions
from caml_train.generate.spec import load_spec

_RETRY_KEYS = set(RetryPolicy.model_fields)
_CONFIG_KEYS = set(RunConfig.model_fields) - {"spec", "spec_ref", "out_dir", "retry"}


class GenerationIncomplete(RuntimeError):
    """Some planned requests have no response yet; rerunning fills them in from where it stopped."""


def generate_corpus(
    *,
    spec: str | Path,
    out_dir: str | Path,
    kind: Literal["documents", "instructions"] = "documents",
    **options: Any,
) -> Path:
    """Generate (or rebuild from the cache) a corpus; return the path of its JSONL file.

    `options`: `model` (required), and any of api_base, api_key, n, seed, shard ("i/n"), concurrency,
    cache_dir, cache_only, temperature, max_tokens, documents (instructions only), plus the retry
    settings max_attempts, base_delay, max_delay, timeout.
    """
    if kind not in ("documents", "instructions"):
        raise ValueError(f"kind must be 'documents' or 'instructions', got {kind!r}")
    unknown = set(options) - _CONFIG_KEYS - _RETRY_KEYS
    if unknown:
        raise ValueError(
            f"unknown generation option(s) {sorted(unknown)}; known: {sorted(_CONFIG_KEYS | _RETRY_KEYS)}"
        )
    if not options.get("model"):
        raise ValueError(
            "generation needs `model` (a litellm model string, e.g. openai/gpt-4o-mini)"
        )
    retry = RetryPolicy(**{k: options.pop(k) for k in list(options) if k in _RETRY_KEYS})
    if isinstance(options.get("shard"), str):
        options["shard"] = Shard.parse(options["shard"])
    options.setdefault("cache_dir", default_cache_dir())
    cfg = RunConfig(
        spec=load_spec(spec), spec_ref=str(spec), out_dir=Path(out_dir), retry=retry, **options
    )
    run = generate_documents if kind == "documents" else generate_instructions
    manifest = run(cfg)
    if not manifest.complete:
        raise GenerationIncomplete(
            f"{manifest.counts.failed} request(s) failed and {manifest.counts.missing_from_cache} are"
            f" missing; see {manifest.files['manifest']}. Run again to retry only those."
        )
    return Path(manifest.files["corpus"])
