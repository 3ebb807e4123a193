"""Every benchmark task, one folder each (inspect_evals layout). Imported by `_registry`."""

# ruff: noqa: F401
from .ahb.task import ahb
