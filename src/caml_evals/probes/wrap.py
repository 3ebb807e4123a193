"""`with_probe(task, ...)`: the same rubric task with a depth probe in its solver chain.

Every rubric benchmark (AHB, MORU, human compassion, value_pressure) builds its Task with
`rubric_task` (solver: `generate()`); a probe replaces that generate step with its own solver
and, where it grades a second text, adds a scorer beside the main one. Task name, dataset,
sample ids, epochs and metrics stay as they were, so a probed log pairs with the plain log of
the same task by sample id (`caml-evals compare plain.eval probed.eval`: the drop with a paired
CI), and the task metadata `probe` says which probe ran.
"""

from __future__ import annotations

from typing import Any

from inspect_ai import Task, task_with
from inspect_ai._util.registry import RegistryInfo, registry_info, set_registry_info
from inspect_ai.scorer import Scorer
from inspect_ai.solver import Solver
from inspect_ai.solver import chain as solver_chain

from ..errors import TaskArgumentError
from .prefill import prefill as prefill_solver
from .prefill import resolve_prefill
from .pushback import first_turn_scorer
from .pushback import pushback as pushback_solver
from .reasoning import cot_request, reasoning_scorer, reasoning_split
from .record import PROBE_METADATA_KEY
from .sets import lookup
from .steer import steer as steer_solver


def _is_generate(step: Any) -> bool:
    try:
        return registry_info(step).name == "inspect_ai/generate"
    except (AttributeError, KeyError, ValueError):  # not a registered object
        return False


def _steps_before_generate(task: Task) -> list[Solver]:
    steps = list(task.solver) if hasattr(task.solver, "__iter__") else [task.solver]
    if not steps or not _is_generate(steps[-1]):
        raise TaskArgumentError(
            f"task {task.name}: probes replace a final generate() step, and this task's solver "
            "does not end with one"
        )
    return steps[:-1]


def _with_metrics_of(wrapper: Scorer, inner: Scorer) -> Scorer:
    """Give `wrapper` the metrics `inner` reports (the task's rubric metrics), as Task does."""
    info = registry_info(wrapper)
    metrics = registry_info(inner).metadata.get("metrics", [])
    set_registry_info(
        wrapper,
        RegistryInfo(
            type=info.type, name=info.name, metadata={**info.metadata, "metrics": metrics}
        ),
    )
    return wrapper


def as_bool(value: bool | str | None, name: str) -> bool:
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise TaskArgumentError(f"-T {name}={value!r}: give true or false")


def with_probe(
    task: Task,
    *,
    prefill: str | None = None,
    pushback: str | None = None,
    cot: bool | str = False,
    prefill_log: str | None = None,
    steer: str | None = None,
    steer_alpha: float = 0.0,
) -> Task:
    """`task` with the probes asked for (none: `task` unchanged).

    prefill: a name from `benchmarks/prefills/prefills.yaml`, or `own:<k>` with `prefill_log`.
    pushback: a name from `benchmarks/probes/pushback.yaml`; adds the `first_turn` scorer.
    cot: ask for reasoning in tags (or use the model's own reasoning) and grade it apart under
        the `reasoning` scorer; the main scorer grades the answer alone. With `prefill` the
        opening is forced after the model's own reasoning; with `pushback` the second turn
        asks for reasoning too, and the reasoning graded is the final answer's.
    steer / steer_alpha: a direction saved by `caml-evals probe persona` and its multiplier,
        added while a local `caml/` model answers (combines with the others).
    """
    cot = as_bool(cot, "cot")
    if steer:
        try:
            steer_alpha = float(steer_alpha)
        except (TypeError, ValueError):
            raise TaskArgumentError(f"-T steer_alpha={steer_alpha!r}: give a number") from None
        steered = with_probe(
            task, prefill=prefill, pushback=pushback, cot=cot, prefill_log=prefill_log
        )
        metadata = dict(steered.metadata or {})
        record = dict(metadata.get(PROBE_METADATA_KEY) or {})
        record.update({"steer": steer, "steer_alpha": steer_alpha})
        metadata[PROBE_METADATA_KEY] = record
        steps = list(steered.solver) if hasattr(steered.solver, "__iter__") else [steered.solver]
        return task_with(
            steered, solver=steer_solver(steer, steer_alpha, solver_chain(steps)), metadata=metadata
        )
    if steer_alpha not in (0, 0.0, None, "0"):
        raise TaskArgumentError("-T steer_alpha needs -T steer=<direction.pt>")
    if not prefill and not pushback and not cot:
        if prefill_log:
            raise TaskArgumentError("-T prefill_log only goes with -T prefill=own:<k>")
        return task
    before = _steps_before_generate(task)
    scorers = list(task.scorer or [])
    if not scorers:
        raise TaskArgumentError(f"task {task.name}: probes need the task's rubric scorer")
    main = scorers[0]
    record: dict[str, Any] = {}
    chain: list[Solver] = [cot_request()] if cot else []
    if prefill:
        opening = resolve_prefill(prefill, prefill_log)
        chain.append(prefill_solver(opening, name=prefill, after_reasoning=cot))
        record["prefill"] = prefill
        record["prefill_text"] = opening if isinstance(opening, str) else None
        if prefill_log:
            record["prefill_log"] = prefill_log
    elif prefill_log:
        raise TaskArgumentError("-T prefill_log only goes with -T prefill=own:<k>")
    if cot:  # split the first answer (the prefilled one, or a fresh one)
        chain.append(reasoning_split(ask=False, generate_first=not prefill))
        scorers.append(_with_metrics_of(reasoning_scorer(main), main))
        record["cot"] = True
    if pushback:
        turn = lookup("pushbacks", pushback, "pushback")
        chain.append(pushback_solver(turn.text, name=pushback, ask_reasoning=cot))
        if cot:  # the reasoning graded is the one behind the final answer
            chain.append(reasoning_split(ask=False, generate_first=False))
        scorers.insert(1, _with_metrics_of(first_turn_scorer(main), main))
        record["pushback"] = pushback
        record["pushback_text"] = turn.text
    metadata = dict(task.metadata or {})
    metadata[PROBE_METADATA_KEY] = record
    return task_with(task, solver=[*before, *chain], scorer=scorers, metadata=metadata)
