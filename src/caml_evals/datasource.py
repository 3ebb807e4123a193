"""Where benchmark data comes from: the public names other modules import.

The implementation (and the provenance record `DataOrigin`) lives in `caml_evals.data.source`;
this module keeps the old import path working. Errors are `caml_evals.errors` user errors:
`inspect eval` prints their message alone, without a traceback.
"""

from __future__ import annotations

from .data.source import (
    DATA_DIR_ENV,
    DataOrigin,
    hub_offline,
    load_hub_rows,
    load_jsonl_rows,
    local_benchmark_dir,
    local_file,
)
from .errors import DataSourceError, TaskArgumentError

__all__ = [
    "DATA_DIR_ENV",
    "DataOrigin",
    "DataSourceError",
    "TaskArgumentError",
    "hub_offline",
    "load_hub_rows",
    "load_jsonl_rows",
    "local_benchmark_dir",
    "local_file",
]
