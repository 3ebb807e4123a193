"""Synthetic corpora for document-tuning and the instruction-tuning control.

spec.py (YAML recipe) → grid.py (seeded cells, shards) → prompts.py (messages) → runner.py
(cache.py + client.py: litellm, retries, accounting) → filters.py, dedup.py, qa.py → rows.py (JSONL)
and manifest.py; pipeline.py wires them, cli.py exposes `caml-train generate[-instructions]`.
Importing this package does not import litellm.
"""

from caml_train.generate.grid import Shard, TemplateParams, sample_grid
from caml_train.generate.spec import GenerationSpec, SpecError, available_specs, load_spec

__all__ = [
    "GenerationSpec",
    "Shard",
    "SpecError",
    "TemplateParams",
    "available_specs",
    "load_spec",
    "sample_grid",
]
