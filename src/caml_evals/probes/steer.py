"""Steering solver: run a task on a local checkpoint with a persona direction added.

`caml-evals probe persona ... --out DIR` saves the chosen layer's direction as
`DIR/direction.pt`; `-T steer=DIR/direction.pt -T steer_alpha=4` then adds `alpha * direction`
to that layer's output while the `caml/` model answers, so any rubric task scores the steered
model (score vs alpha: one run per alpha, compared by sample id). alpha = 0 installs nothing.

The hook is on the model object shared by every sample of the run (the `caml/` provider
batches samples together): it is installed while any sample of the run answers and removed
after the last one. Two runs in one process that steer the same model object differently at
the same time are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inspect_ai.model import get_model
from inspect_ai.solver import Generate, Solver, TaskState, solver

from ..errors import TaskArgumentError
from .persona import steering

_ACTIVE: dict[int, list[Any]] = {}  # id(model) -> [settings, samples in flight, context]


def save_direction(path: str | Path, vector, layer: int, model: str) -> Path:
    import torch

    from ..outputs import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"vector": vector.detach().cpu(), "layer": layer, "model": model}, tmp)
    return path


def load_direction(path: str | Path) -> tuple[Any, int, str]:
    """(vector, layer, model it came from) of a saved direction, or a TaskArgumentError."""
    import torch

    try:
        data = torch.load(Path(path), weights_only=True)
        return data["vector"], int(data["layer"]), str(data["model"])
    except FileNotFoundError:
        raise TaskArgumentError(f"-T steer={path}: no such file") from None
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as ex:
        raise TaskArgumentError(f"-T steer={path}: not a saved direction ({ex})") from None


def _enter(model: Any, path: str, alpha: float) -> None:
    """Count one more sample answering with the hook; install it for the first."""
    key, settings = id(model), (str(path), float(alpha))
    active = _ACTIVE.get(key)
    if active is not None:
        if active[0] != settings:
            raise TaskArgumentError(
                f"-T steer: this model is already steered with {active[0]} by another run"
            )
        active[1] += 1
        return
    context = None
    if alpha != 0:
        vector, layer, _ = load_direction(path)
        context = steering(model, layer, vector, float(alpha))
        context.__enter__()
    _ACTIVE[key] = [settings, 1, context]


def _exit(model: Any) -> None:
    """One sample done; the last one removes the hook, so later runs are unsteered."""
    active = _ACTIVE[id(model)]
    active[1] -= 1
    if active[1] == 0:
        if active[2] is not None:
            active[2].__exit__(None, None, None)
        del _ACTIVE[id(model)]


@solver
def steer(path: str, alpha: float, inner: Solver) -> Solver:
    """Run `inner` (the task's solver chain) with `alpha * direction` added to the model.

    The hook is installed while any sample of the run is answering and removed after the last
    one, so a plain run of the same model object afterwards is not steered.
    """
    load_direction(path)  # a bad file fails when the task is built, before any sample

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        model = get_model()
        hf_model = getattr(model.api, "model", None)
        if not str(model).startswith("caml/") or hf_model is None:
            raise TaskArgumentError(
                f"-T steer needs a local caml/ checkpoint as the model under test, not {model}"
            )
        _enter(hf_model, path, alpha)
        try:
            return await inner(state, generate)
        finally:
            _exit(hf_model)

    return solve
