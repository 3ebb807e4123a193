"""caml_train: synthetic documents -> document-tuning -> standard SFT -> scored checkpoints.

Modules (each one job): `config` (pydantic models of the YAML configs), `data` (rows -> token
examples -> packed batches), `train` (one trainer for the text / instruct / sft stages),
`experiment` (the grid: stages, caching, evals), `results` (the table from the logs),
`runcard` (provenance of every checkpoint), `generate/` (synthetic corpora), `cli`.
Heavy imports (torch, transformers) happen inside functions, so `import caml_train` is cheap.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
