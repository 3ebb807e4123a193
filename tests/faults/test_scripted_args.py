"""The scripted provider's command-line arguments (issue 14, defect 13), in-process: 7 cases.

`inspect eval --model scripted/x -M reply=...` hands the provider whatever Inspect's YAML
parser made of the text; the provider recovers the text typed (from the command line when it is
there, else by rendering the value back), and `reply_file=` / unknown arguments fail in one
line. The end-to-end run through the real CLI is in test_inspect_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from faultlib import assert_user_error, call

from caml_evals.models.scripted import ScriptedModelAPI, _reply_text


def _parsed(raw: str):
    """What Inspect's -M parser passes on for `reply=<raw>` (inspect_ai._util.config)."""
    from inspect_ai._util.config import parse_cli_args

    return parse_cli_args([f"reply={raw}"])["reply"]


@pytest.mark.parametrize(
    ("argv", "typed"),
    [
        pytest.param(["-M", "reply=GRADE: YES"], "GRADE: YES", id="scripted-dash-M-mapping"),
        pytest.param(["-Mreply=GRADE: yes"], "GRADE: yes", id="scripted-attached-M-bool-case-kept"),
        pytest.param(["--model-args=reply=a, b: c"], "a, b: c", id="scripted-model-args-list"),
        pytest.param(["-M", 'reply="GRADE: YES"'], "GRADE: YES", id="scripted-yaml-quoted"),
    ],
)
def test_reply_text_is_the_text_typed(argv: list[str], typed: str) -> None:
    raw = argv[-1].split("reply=", 1)[1]
    value = _parsed(raw)
    assert _reply_text(value, ["inspect", "eval", "t.py", "--model", "scripted/x", *argv]) == typed


def test_reply_text_without_the_command_line_renders_the_value_back() -> None:
    assert _reply_text(yaml.safe_load("GRADE: YES"), argv=[]) == "GRADE: YES"
    assert _reply_text(["it is", " sure"], argv=[]) == "it is, sure"
    assert _reply_text(4, argv=[]) == "4"


def test_reply_file_errors_are_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    got = call(lambda: ScriptedModelAPI("x", reply_file=str(missing)))
    assert_user_error(got, missing, "no such file")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"GRADE: caf\xe9")
    assert_user_error(call(lambda: ScriptedModelAPI("x", reply_file=str(latin))), latin, "utf-8")


def test_unknown_or_conflicting_arguments_are_one_line() -> None:
    got = call(lambda: ScriptedModelAPI("x", repy="GRADE: YES"))
    assert got.code == 2 and "unknown argument(s) ['repy']" in got.err and "\n" not in got.err
    got = call(lambda: ScriptedModelAPI("x", reply="a", reply_file="b"))
    assert got.code == 2 and "only one of" in got.err
