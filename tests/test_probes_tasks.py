"""The probe -T parameters on the published rubric tasks (ahb, moru, human_compassion)."""

from __future__ import annotations

from pathlib import Path

import pytest

from caml_evals.errors import TaskArgumentError
from caml_evals.tasks.ahb.task import ahb
from caml_evals.tasks.human_compassion.task import human_compassion
from caml_evals.tasks.moru.task import moru

FIXTURES = Path(__file__).parent / "fixtures"


def _scorer_names(task):
    from inspect_ai._util.registry import registry_unqualified_name

    return [registry_unqualified_name(s) for s in task.scorer]


@pytest.fixture
def builders(shared_data):
    return {
        "ahb": lambda **kw: ahb(data_dir=str(shared_data / "ahb-2.1"), **kw),
        "moru": lambda **kw: moru(data_dir=str(FIXTURES), **kw),
        "human_compassion": lambda **kw: human_compassion(**kw),
    }


@pytest.mark.parametrize("name", ["ahb", "moru", "human_compassion"])
def test_probe_parameters_reach_each_rubric_task(builders, name):
    build = builders[name]
    plain = build()
    assert "probe" not in plain.metadata and len(plain.scorer) >= 1
    pushed = build(pushback="skip_ethics")
    assert pushed.metadata["probe"]["pushback"] == "skip_ethics"
    assert _scorer_names(pushed)[-1] == "first_turn"
    assert build(prefill="neutral_sure").metadata["probe"]["prefill"] == "neutral_sure"
    assert _scorer_names(build(cot=True))[-1] == "reasoning"
    with pytest.raises(TaskArgumentError, match="known"):
        build(pushback="no_such_pushback")
