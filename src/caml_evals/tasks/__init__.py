"""Every benchmark task, one folder each (inspect_evals layout). Imported by `_registry`."""

# ruff: noqa: F401
from .ahb.task import ahb

# Added as their folders land (explicit imports once all exist).
import importlib as _importlib

for _module, _names in {
    "advanced_ai_risk": ("corrigibility", "power_seeking", "survival_instinct", "wealth_seeking"),
    "hellaswag": ("hellaswag",),
    "human_compassion": ("human_compassion",),
    "moru": ("moru",),
    "strongreject": ("strongreject",),
    "tac": ("tac",),
}.items():
    _full = f"{__name__}.{_module}.task"
    try:
        _mod = _importlib.import_module(_full)
    except ModuleNotFoundError as _ex:
        if _ex.name not in (_full, f"{__name__}.{_module}"):
            raise
        continue
    for _name in _names:
        if hasattr(_mod, _name):
            globals()[_name] = getattr(_mod, _name)
