"""Fault injection through the real `inspect eval` CLI: 2 subprocess cases (each ~3-10 s).

* `inspect-eval-user-error`: what Inspect does with our `UserError` (a `PrerequisiteError`)
  raised while a task loads its data. Checked outcome (Inspect 0.3.x `exception_hook`): the
  message alone on STDOUT, no traceback, exit status 1, and no log file written. This is why the
  loader cases in test_loaders.py can run in-process and assert the `UserError` itself.
* `inspect-eval-scripted-reply-forms`: issue 14 defect 13. Inspect reads `-M key=value` as YAML
  and splits strings at commas, so the unquoted `-M reply="GRADE: YES, surely"` reaches the
  scripted provider as the mapping {"GRADE": "YES, surely"}; the provider turns it back into the
  text typed. `reply_file=` (here through a `--model-role` mapping) gives a file's text exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSPECT = Path(sys.executable).with_name("inspect")


def _inspect(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    if not INSPECT.is_file():
        pytest.skip(f"no inspect console script next to {sys.executable}")
    env = {
        **os.environ,
        "COLUMNS": "1000",  # one message, one line (rich wraps at the terminal width)
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    return subprocess.run(
        [str(INSPECT), "eval", *args, "--display", "plain"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_inspect_eval_user_error(tmp_path: Path, ahb_dir: Path) -> None:
    data = tmp_path / "data" / "ahb-2.1"
    data.mkdir(parents=True)
    lines = (ahb_dir / "questions.jsonl").read_bytes().splitlines(keepends=True)[:3]
    bad = data / "questions.jsonl"
    bad.write_bytes(b"".join(lines) + b'{"id": 9, "question": "caf\xe9?", "tags": []}\n')
    (data / "dimensions.jsonl").write_bytes((ahb_dir / "dimensions.jsonl").read_bytes())
    logs = tmp_path / "logs"
    got = _inspect(
        [
            "caml_evals/ahb",
            "-T",
            f"data_dir={data.parent}",
            "--model",
            "scripted/x",
            "--log-dir",
            str(logs),
        ],
        cwd=tmp_path,
    )
    both = got.stdout + got.stderr
    assert "Traceback" not in both, both
    assert got.returncode == 1, both
    lines = [line for line in got.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and str(bad) in lines[0] and "UTF-8" in lines[0], both
    assert not logs.exists() or not any(logs.iterdir()), (
        "a log was written for a task that never ran"
    )


TASK = """
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import get_model
from inspect_ai.scorer import Score, accuracy, scorer
from inspect_ai.solver import generate


@scorer(metrics=[accuracy()])
def grader_echo():
    async def score(state, target):
        reply = await get_model(role="grader").generate("grade it")
        return Score(value=1, answer=state.output.completion, explanation=reply.completion)
    return score


@task
def echo():
    return Task(dataset=[Sample(input="Answer.")], solver=generate(), scorer=grader_echo())
"""


def test_inspect_eval_scripted_reply_forms(tmp_path: Path) -> None:
    from inspect_ai.log import read_eval_log

    (tmp_path / "echo.py").write_text(TASK)
    reply_file = tmp_path / "reply.txt"
    reply_file.write_text("GRADE: NO, because: it ignores the fish\n")
    logs = tmp_path / "logs"
    got = _inspect(
        [
            "echo.py@echo",
            "--model",
            "scripted/x",
            "-M",
            "reply=GRADE: YES, surely",
            "--model-role",
            f"grader={{model: scripted/g, model_args: {{reply_file: {reply_file}}}}}",
            "--log-dir",
            str(logs),
        ],
        cwd=tmp_path,
    )
    both = got.stdout + got.stderr
    assert got.returncode == 0 and "Traceback" not in both, both
    (log_path,) = logs.glob("*.eval")
    log = read_eval_log(str(log_path))
    assert log.status == "success", log.error
    (score,) = log.samples[0].scores.values()
    assert score.answer == "GRADE: YES, surely"  # the text typed, not {'GRADE': 'YES, surely'}
    assert score.explanation == "GRADE: NO, because: it ignores the fish"
