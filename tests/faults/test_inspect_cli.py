"""Fault injection through the real `inspect eval` CLI: 2 cases, 2 subprocesses run together.

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


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "COLUMNS": "1000",  # one message, one line (rich wraps at the terminal width)
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    return subprocess.Popen(
        [str(INSPECT), "eval", *args, "--display", "plain"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
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
REPLY_FILE_TEXT = "GRADE: NO, because: it ignores the fish"


@pytest.fixture(scope="module")
def runs(ahb_dir: Path, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Both `inspect eval` runs, started together (each mostly waits on its imports)."""
    if not INSPECT.is_file():
        pytest.skip(f"no inspect console script next to {sys.executable}")
    # 1. a task whose data file is not UTF-8
    bad_root = tmp_path_factory.mktemp("inspect-user-error")
    data = bad_root / "data" / "ahb-2.1"
    data.mkdir(parents=True)
    lines = (ahb_dir / "questions.jsonl").read_bytes().splitlines(keepends=True)[:3]
    bad = data / "questions.jsonl"
    bad.write_bytes(b"".join(lines) + b'{"id": 9, "question": "caf\xe9?", "tags": []}\n')
    (data / "dimensions.jsonl").write_bytes((ahb_dir / "dimensions.jsonl").read_bytes())
    # 2. the scripted provider's reply forms
    root = tmp_path_factory.mktemp("inspect-scripted")
    (root / "echo.py").write_text(TASK)
    reply_file = root / "reply.txt"
    reply_file.write_text(REPLY_FILE_TEXT + "\n")
    procs = {
        "user-error": (
            _start(
                [
                    "caml_evals/ahb",
                    "-T",
                    f"data_dir={data.parent}",
                    "--model",
                    "scripted/x",
                    "--log-dir",
                    str(bad_root / "logs"),
                ],
                cwd=bad_root,
            ),
            bad_root,
        ),
        "scripted": (
            _start(
                [
                    "echo.py@echo",
                    "--model",
                    "scripted/x",
                    "-M",
                    "reply=GRADE: YES, surely",
                    "--model-role",
                    f"grader={{model: scripted/g, model_args: {{reply_file: {reply_file}}}}}",
                    "--log-dir",
                    str(root / "logs"),
                ],
                cwd=root,
            ),
            root,
        ),
    }
    out = {}
    for name, (proc, where) in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        out[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), where)
    return out


def test_inspect_eval_user_error(runs) -> None:
    got, root = runs["user-error"]
    bad = root / "data" / "ahb-2.1" / "questions.jsonl"
    logs = root / "logs"
    both = got.stdout + got.stderr
    assert "Traceback" not in both, both
    assert got.returncode == 1, both
    lines = [line for line in got.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and str(bad) in lines[0] and "UTF-8" in lines[0], both
    assert not logs.exists() or not any(logs.iterdir()), (
        "a log was written for a task that never ran"
    )


def test_inspect_eval_scripted_reply_forms(runs) -> None:
    from inspect_ai.log import read_eval_log

    got, root = runs["scripted"]
    both = got.stdout + got.stderr
    assert got.returncode == 0 and "Traceback" not in both, both
    (log_path,) = (root / "logs").glob("*.eval")
    log = read_eval_log(str(log_path))
    assert log.status == "success", log.error
    (score,) = log.samples[0].scores.values()
    assert score.answer == "GRADE: YES, surely"  # the text typed, not {'GRADE': 'YES, surely'}
    assert score.explanation == REPLY_FILE_TEXT
