"""The one error rule of the command lines, run as a user runs them (subprocesses).

A user's mistake: exit 2 and ONE line `caml-evals <command>: <message>` on stderr, no traceback,
no partial output. A bug: exit 3, one line with the path of a file holding the traceback.
Subcommands import lazily: `--help` lists every command without importing Inspect.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai import Task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.scorer import match

import caml_evals.models.providers  # registers scripted/ without the entry point
from caml_evals.cli import COMMANDS, main
from caml_evals.cli.errors import one_line, run_cli
from caml_evals.errors import EXIT_BUG, EXIT_USER_ERROR, OutputError, UserError

PY = sys.executable


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        CAML_EVALS_CACHE=str(tmp_path / "cache"),
        COLUMNS="200",
    )
    return env


def _run(args: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        check=False,
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=timeout,
        cwd=tmp_path,
    )


def caml_evals(*argv: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return _run([PY, "-m", "caml_evals.cli", *argv], tmp_path)


def _one_line(proc: subprocess.CompletedProcess, code: int, prefix: str) -> str:
    everything = proc.stdout + proc.stderr
    assert "Traceback" not in everything, everything
    assert proc.returncode == code, (proc.returncode, everything)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(prefix), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-logs")
    task = Task(
        name="cli_check",
        dataset=[Sample(id=i, input="a", target="x") for i in (1, 2)],
        scorer=match(),
    )
    (log,) = inspect_eval(
        task,
        model="scripted/m",
        model_args={"reply": "x"},
        log_dir=str(root / "good"),
        display="none",
    )
    good = Path(log.location.removeprefix("file://"))
    mixed = root / "mixed"
    mixed.mkdir()
    shutil.copy(good, mixed / good.name)
    truncated = mixed / "2026-01-01T00-00-00+00-00_cli-check_truncated.eval"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    return {"good": good, "mixed": mixed, "truncated": truncated}


def test_help_lists_every_command_without_importing_inspect(tmp_path):
    code = (
        "import sys\n"
        "from caml_evals.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as ex:\n    assert ex.code == 0\n"
        "print('IMPORTED' if 'inspect_ai' in sys.modules or 'pandas' in sys.modules else 'LAZY')\n"
    )
    proc = _run([PY, "-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("LAZY")
    for name, entry in COMMANDS.items():
        assert name in proc.stdout and entry.help.split()[0] in proc.stdout


def test_console_script_entry_point(tmp_path):
    script = Path(PY).parent / "caml-evals"
    if not script.exists():
        pytest.skip(f"console script not installed beside {PY}")
    proc = _run([str(script), "tasks", "--help"], tmp_path)
    assert proc.returncode == 0 and "--params" in proc.stdout


def test_summary_on_a_truncated_log_names_it(logs, tmp_path):
    out = tmp_path / "s.json"
    proc = caml_evals("summary", str(logs["truncated"]), "--json", str(out), tmp_path=tmp_path)
    line = _one_line(proc, 2, "caml-evals summary: ")
    assert str(logs["truncated"]) in line and "cannot read" in line
    assert not out.exists()


def test_leaderboard_fails_on_a_corrupt_log_naming_it(logs, tmp_path):
    """Chosen behaviour (docs/errors.md): fail, not skip; a board that silently leaves out a
    run misleads. Nothing is written."""
    site = tmp_path / "site"
    proc = caml_evals("leaderboard", str(logs["mixed"]), "-o", str(site), tmp_path=tmp_path)
    line = _one_line(proc, 2, "caml-evals leaderboard: ")
    assert str(logs["truncated"]) in line and "cannot read" in line
    assert not site.exists()


def test_caml_train_follows_the_same_rule(tmp_path):
    proc = _run([PY, "-m", "caml_train.cli", "train", str(tmp_path / "nope.yaml")], tmp_path)
    assert "nope.yaml" in _one_line(proc, 2, "caml-train train: ")


def test_a_bug_is_exit_3_with_the_traceback_in_a_file(tmp_path):
    code = (
        "import sys\n"
        "from caml_evals.cli.errors import run_cli\n"
        "def boom():\n    return {}['no such key']\n"
        "sys.exit(run_cli('caml-evals summary', boom))\n"
    )
    proc = _run([PY, "-c", code], tmp_path)
    line = _one_line(proc, EXIT_BUG, "caml-evals summary: unexpected error")
    assert "KeyError" in line
    crash = Path(line.rsplit("the traceback is in ", 1)[1])
    assert crash.parent == tmp_path / "cache" / "crash"
    text = crash.read_text()
    assert "Traceback" in text and "no such key" in text and "boom" in text


# ------------------------------------------------------------------ in-process details


def test_run_cli_user_errors_interrupts_and_extra_types(capsys):
    def raise_(ex: BaseException):
        def fn():
            raise ex

        return fn

    assert run_cli("caml-evals x", raise_(UserError("first\n  second"))) == EXIT_USER_ERROR
    assert capsys.readouterr().err == "caml-evals x: first; second\n"
    assert run_cli("caml-evals x", raise_(OutputError("caml-evals x: already named"))) == 2
    assert capsys.readouterr().err == "caml-evals x: already named\n"
    assert run_cli("caml-train run", raise_(KeyError("k")), user_errors=(KeyError,)) == 2
    assert capsys.readouterr().err.startswith("caml-train run: ")
    assert run_cli("caml-evals x", raise_(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == "caml-evals x: interrupted\n"
    with pytest.raises(SystemExit):
        run_cli("caml-evals x", raise_(SystemExit(0)))
    assert one_line("a\n\n b \n") == "a; b"


def _err_line(capsys, prefix: str) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(prefix), captured.err
    return lines[0]


def test_argument_mistakes_are_one_line(capsys):
    assert main(["suite", "--limit", "x"]) == EXIT_USER_ERROR
    assert "invalid int value: 'x'" in _err_line(capsys, "caml-evals suite: ")
    assert main(["bogus"]) == EXIT_USER_ERROR
    assert "invalid choice: 'bogus'" in _err_line(capsys, "caml-evals: ")
    assert main([]) == EXIT_USER_ERROR
    assert "required: COMMAND" in _err_line(capsys, "caml-evals: ")
    from caml_train.cli import main as train_main

    assert train_main(["train", "x.yaml", "--bogus"]) == EXIT_USER_ERROR
    assert "unrecognized arguments: --bogus" in _err_line(capsys, "caml-train: ")


def test_summary_missing_log_and_unwritable_json(logs, tmp_path, capsys):
    missing = tmp_path / "nope.eval"
    assert main(["summary", str(missing)]) == EXIT_USER_ERROR
    line = _err_line(capsys, "caml-evals summary: ")
    assert str(missing) in line and "no such" in line
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["summary", str(logs["good"]), "--json", str(blocker / "s.json")]) == 2
    assert "in the way" in _err_line(capsys, "caml-evals summary: ")
    assert blocker.read_text() == "x"
    folder = tmp_path / "folder.json"
    folder.mkdir()
    assert main(["summary", str(logs["good"]), "--json", str(folder)]) == 2
    assert "it is a folder" in _err_line(capsys, "caml-evals summary: ")


def test_leaderboard_into_an_unwritable_folder_writes_nothing(logs, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["leaderboard", str(logs["good"].parent), "-o", str(blocker / "site")]) == 2
    assert "in the way" in _err_line(capsys, "caml-evals leaderboard: ")


def test_a_file_system_error_naming_a_path_is_a_user_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CAML_EVALS_CACHE", str(tmp_path / "cache"))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")

    def write_under_a_file():
        (blocker / "out.json").write_text("{}")

    assert run_cli("caml-train results", write_under_a_file) == EXIT_USER_ERROR
    assert (
        capsys.readouterr().err == f"caml-train results: {blocker / 'out.json'}: Not a directory\n"
    )

    def a_bug():
        raise OSError("no filename: a bug, not the user's path")

    assert run_cli("caml-evals x", a_bug) == EXIT_BUG
    assert "unexpected error" in capsys.readouterr().err
    assert len(list((tmp_path / "cache" / "crash").iterdir())) == 1
