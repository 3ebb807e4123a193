"""Every benchmark task, one folder each (inspect_evals layout). Imported by `_registry`."""

from .advanced_ai_risk.task import corrigibility, power_seeking, survival_instinct, wealth_seeking
from .ahb.task import ahb, anima
from .hellaswag.task import hellaswag
from .human_compassion.task import human_compassion
from .moru.task import moru
from .strongreject.task import strongreject
from .tac.task import tac
from .value_pressure.task import value_pressure

__all__ = [
    "ahb",
    "anima",
    "corrigibility",
    "hellaswag",
    "human_compassion",
    "moru",
    "power_seeking",
    "strongreject",
    "survival_instinct",
    "tac",
    "value_pressure",
    "wealth_seeking",
]
