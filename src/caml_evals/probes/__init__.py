"""Depth probes: is an instilled value more than a few tokens deep? (docs/probes.md)

Solvers that wrap any rubric task (`with_probe`: prefill, pushback, reasoning split, steering;
they compose), the report that pairs their scores (`report.probe_report`, and
`report.probe_results` for the suite, summary and leaderboard tables; which run a probed run
is paired with: `record`), and analyses on local checkpoints (`depth`: per-token KL between two
checkpoints by position; `persona`: a compassion direction per layer; `steer_curve`: a rubric
task's score vs the steering alpha).
"""

from .prefill import PREFILL_PROVIDERS, prefill, resolve_prefill
from .pushback import FIRST_TURN_SCORER, first_turn_scorer, pushback
from .reasoning import REASONING_SCORER, reasoning_scorer, reasoning_split, split_reasoning
from .wrap import PROBE_METADATA_KEY, with_probe

__all__ = [
    "FIRST_TURN_SCORER",
    "PREFILL_PROVIDERS",
    "PROBE_METADATA_KEY",
    "REASONING_SCORER",
    "first_turn_scorer",
    "prefill",
    "pushback",
    "reasoning_scorer",
    "reasoning_split",
    "resolve_prefill",
    "split_reasoning",
    "with_probe",
]
