"""Benchmark data: ONE data-source rule with provenance (`source`), ONE language normaliser
(`languages`) and ONE loader for tagged-question benchmarks (`tagged`: AHB, MORU, human
compassion). `caml_evals.datasource` re-exports the source functions under their old names."""

from .source import (
    DATA_DIR_ENV,
    DataOrigin,
    hub_offline,
    load_hub_rows,
    load_jsonl_rows,
    local_benchmark_dir,
    local_file,
)

__all__ = [
    "DATA_DIR_ENV",
    "DataOrigin",
    "hub_offline",
    "load_hub_rows",
    "load_jsonl_rows",
    "local_benchmark_dir",
    "local_file",
]
