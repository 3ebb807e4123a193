"""Depth and persona probes on every local checkpoint of the grid (`eval.probes`).

The analyses are `caml_evals.probes`' library functions, run here once per checkpoint and
cached like evals, by the stage key plus the probe's settings (`<output_dir>/probes/`):

- `depth`: per-token KL(checkpoint || base model) along the checkpoint's own greedy answers to
  the probe questions (`caml_evals.probes.depth.depth_profiles`), summarised as the mean over
  the first `head` answer tokens and over the rest: a tuning that moves only the opening shows
  a large first and a small rest (Qi et al. 2024). The untouched base model is its own zero
  and is not probed.
- `persona`: one compassion direction for the whole grid, derived once from the base model on
  the shipped contrastive pairs (`persona_probe`; its layer is the one that separates held-out
  pairs best), and each checkpoint's own greedy answers projected on it
  (`answer_projection`): where along the direction each arm and stage lies.

The questions are the first `eval.probe_questions` inputs of the first eval task (its args,
e.g. the local data_dir). Local transformers checkpoints only; a probe that cannot run on a
stage is that stage's listed failure.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ExperimentConfig
    from .experiment import Plan, StagePlan

PROBES_DIR = "probes"


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _settings(config: ExperimentConfig) -> dict[str, Any]:
    from .experiment import _task_args

    ev = config.eval
    assert ev is not None and ev.tasks
    task = ev.tasks[0]
    return {
        "task": task.task,
        "task_args": _task_args(ev, task),
        "questions": ev.probe_questions,
        "max_new_tokens": ev.probe_max_tokens,
    }


def probe_path(config: ExperimentConfig, st: StagePlan, probe: str) -> Path:
    """Where one probe's result for one checkpoint lives (its cache key in the name)."""
    key = _hash({"stage": st.key, "probe": probe, "base": config.base_model, **_settings(config)})
    return config.output_dir / PROBES_DIR / f"{probe}-{key[:16]}.json"


def _direction_paths(config: ExperimentConfig) -> tuple[Path, Path]:
    from caml_evals.probes.persona import PAIRS_FILE
    from caml_evals.resources import benchmark_path

    from .data import file_sha256
    from .experiment import _base_identity

    key = _hash(
        {
            "base": _base_identity(config.base_model, config.base_model_revision),
            "pairs": file_sha256(benchmark_path(PAIRS_FILE)),
        }
    )
    root = config.output_dir / PROBES_DIR
    return root / f"persona-direction-{key[:16]}.pt", root / f"persona-direction-{key[:16]}.json"


def _write(path: Path, data: dict[str, Any]) -> None:
    from caml_evals.jsonsafe import nan_to_none

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(nan_to_none(data), indent=2, allow_nan=False), encoding="utf-8")
    tmp.replace(path)


def run_probes(
    config: ExperimentConfig,
    stages: list[StagePlan],
    say: Callable[[str], None],
) -> tuple[list[str], list[str], list[str]]:
    """Run the configured probes on the given finished stages; (done, cached, failures)."""
    from caml_evals.probes.depth import load_local, task_questions

    assert config.eval is not None
    probes = list(config.eval.probes)
    done: list[str] = []
    cached: list[str] = []
    failures: list[str] = []
    todo = []
    for st in stages:
        for probe in probes:
            if probe == "depth" and st.train_config is None and st.point is None:
                continue  # the base model against itself: zero by definition
            label = f"{probe} on {st.label}"
            if probe_path(config, st, probe).is_file():
                cached.append(label)
            else:
                todo.append((st, probe, label))
    if not todo:
        return done, cached, failures
    settings = _settings(config)
    try:
        questions = task_questions(settings["task"], settings["questions"], settings["task_args"])
        base = load_local(f"caml/{config.base_model}")
        unit = layer = None
        if "persona" in probes:
            unit, layer = _persona_direction(config, base, say)
    except Exception as ex:  # noqa: BLE001 - no base or no questions: every probe is listed
        why = f"{type(ex).__name__}: {ex}"
        return done, cached, [f"probe {label}: {why}" for _, _, label in todo]
    by_stage: dict[str, list[tuple[StagePlan, str, str]]] = {}
    for item in todo:  # one load of each checkpoint for all its probes
        by_stage.setdefault(item[0].key + item[0].label, []).append(item)
    for items in by_stage.values():
        st = items[0][0]
        model = None
        try:
            model = base if st.model_spec == config.base_model else load_local(st.model_spec)
        except Exception as ex:  # noqa: BLE001 - the stage's probes are listed, the rest run
            failures += [f"probe {label}: {type(ex).__name__}: {ex}" for _, _, label in items]
            continue
        for _, probe, label in items:
            say(f"probe {label}")
            try:
                values, result = _probe(probe, base, model, questions, settings, unit, layer)
                _write(
                    probe_path(config, st, probe),
                    {
                        "probe": probe,
                        "arm": st.arm,
                        "column": st.column,
                        "seed": st.seed,
                        "stage_key": st.key,
                        "model": st.model_spec,
                        "settings": settings,
                        "values": values,
                        "result": result,
                    },
                )
                done.append(label)
            except Exception as ex:  # noqa: BLE001 - one probe's failure is listed, not fatal
                failures.append(f"probe {label}: {type(ex).__name__}: {ex}")
        model = None  # a checkpoint is not kept in RAM beyond its probes
        gc.collect()
    return done, cached, failures


def _probe(
    probe: str,
    base: Any,
    model: Any,
    questions: list[str],
    settings: dict[str, Any],
    unit: Any,
    layer: int | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the table's values, the full result) of one probe on one loaded checkpoint."""
    if probe == "depth":
        from caml_evals.probes.depth import depth_profiles

        result = depth_profiles(
            base,
            model,
            questions,
            max_new_tokens=settings["max_new_tokens"],
            answers_from=("tuned",),
            task=settings["task"],
        ).model_dump()
        profile = result["profiles"][0]
        keep = ("mean_kl_first", "mean_kl_rest", "head", "answers")
        return {k: profile[k] for k in keep}, result
    from caml_evals.probes.persona import answer_projection

    values = {
        "projection": answer_projection(model, unit, layer, questions, settings["max_new_tokens"]),
        "layer": layer,
    }
    return values, values


def _persona_direction(config: ExperimentConfig, base: Any, say: Callable[[str], None]):
    """The grid's compassion direction from the base model (computed once, cached)."""
    from caml_evals.probes.persona import persona_probe
    from caml_evals.probes.steer import load_direction

    pt, info = _direction_paths(config)
    if not pt.is_file() or not info.is_file():
        say("probe persona: deriving the compassion direction from the base model")
        pt.parent.mkdir(parents=True, exist_ok=True)
        result = persona_probe(base, direction_file=pt)
        _write(info, result.model_dump())
    vector, layer, _ = load_direction(pt)
    return vector / vector.norm().clamp_min(1e-12), layer


def probe_rows(config: ExperimentConfig, p: Plan) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every cached probe result of the plan's stages, and the persona direction's separation."""
    if config.eval is None or not config.eval.probes:
        return [], {}
    rows = []
    seen: set[Path] = set()
    for st in p.stages:
        for probe in config.eval.probes:
            path = probe_path(config, st, probe)
            if path in seen:
                continue  # the base model is one checkpoint for every seed
            seen.add(path)
            if path.is_file():
                data = json.loads(path.read_text(encoding="utf-8"))
                rows.append({k: data[k] for k in ("probe", "arm", "column", "seed", "values")})
    direction: dict[str, Any] = {}
    if "persona" in config.eval.probes:
        info = _direction_paths(config)[1]
        if info.is_file():
            data = json.loads(info.read_text(encoding="utf-8"))
            best = next(s for s in data["layers"] if s["layer"] == data["best_layer"])
            direction = {
                "model": data["model"],
                "layer": data["best_layer"],
                "held_out_accuracy": best["accuracy"],
                "held_out_pairs": len(data["held_out_pairs"]),
                "gap_z": best["gap_z"],
            }
    return rows, direction
