"""A scripted Inspect model API for tests: ours and labs' (`scripted/<name>`).

Inspect's `mockllm` counts tokens with tiktoken, which downloads its vocabulary at run time and
so fails offline; this provider counts whitespace-separated words instead and adds a few
conveniences for judge tests: replies may be plain strings, `ModelOutput`s or exceptions (raised
as grader errors), or come from a responder function that sees the prompt.

    get_model("scripted/judge", memoize=False, replies=["GRADE: YES", RuntimeError("boom")])
    get_model("scripted/judge", memoize=False,
              responder=lambda prompt: "GRADE: YES" if "fish" in prompt else "GRADE: NO")
    # a responder of (prompt, input, tools) sees the messages; of (..., config) also the settings

Pass `memoize=False`: Inspect memoizes models by name and JSON-able args, and a responder or an
iterator of replies serialises to null, so a second `scripted/judge` with another responder
would silently get the first one back.

From the command line, one reply repeated for every call:

    inspect eval ... --model scripted/x -M reply_file=reply.txt      # the file's text, exactly
    inspect eval ... --model scripted/x -M reply='"GRADE: YES"'      # YAML-quoted text

Inspect reads every `-M key=value` as YAML and splits strings at commas, so the unquoted
`-M reply="GRADE: YES"` (the shell removes the double quotes) arrives as the mapping
`{"GRADE": True}`, and `-M reply="a, b"` as a list. Both are accepted: a `reply` that is not a
string is turned back into the text that was typed, read from the command line when it is
there (exact), else rebuilt from the parsed value (`_reply_text`).
"""

from __future__ import annotations

import inspect as pyinspect
import itertools
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Union

import yaml
from inspect_ai.model import (
    ChatMessage,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from ..errors import ConfigError

Reply = Union[str, ModelOutput, BaseException]
Responder = Callable[..., Reply]

_MODEL_ARG_FLAGS = ("-M", "--model-args")


def _typed_model_args(argv: Sequence[str], key: str) -> list[str]:
    """The raw `key=...` texts given with -M/--model-args on a command line."""
    raws = []
    for i, arg in enumerate(argv):
        if arg in _MODEL_ARG_FLAGS and i + 1 < len(argv):
            given = argv[i + 1]
        elif arg.startswith("-M") and arg != "-M" and not arg.startswith("--"):
            given = arg[2:]
        elif arg.startswith("--model-args="):
            given = arg.removeprefix("--model-args=")
        else:
            continue
        name, sep, raw = given.partition("=")
        if sep and name.replace("-", "_") == key:
            raws.append(raw)
    return raws


def _render(value: Any) -> str:
    """Best-effort YAML-parsed value back to text (`{"GRADE": True}` -> `GRADE: YES`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "YES" if value else "NO"  # YAML 1.1 reads yes/no/true/false/on/off as bools
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(_render(v) for v in value)  # Inspect split the text at its commas
    if isinstance(value, dict):
        return ", ".join(f"{_render(k)}: {_render(v)}" for k, v in value.items())
    return str(value)


def _reparse(raw: str) -> Any:
    """What Inspect's -M parser makes of `raw` (YAML, then strings split at commas)."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return None
    if isinstance(value, str):
        parts = value.split(",")
        value = parts if len(parts) > 1 else parts[0]
    return value


def _reply_text(value: Any, argv: Sequence[str] | None = None) -> str:
    """The reply text a user meant by `-M reply=...`, whatever YAML made of it.

    The exact text comes from the command line when one of its `reply=` arguments parses to
    `value` (what `inspect eval` saw); otherwise the value is rendered back (`_render`).
    """
    if isinstance(value, str):
        return value
    for raw in _typed_model_args(sys.argv if argv is None else argv, "reply"):
        if _reparse(raw) == value:
            parsed = yaml.safe_load(raw)
            return parsed if isinstance(parsed, str) else raw
    return _render(value)


def _read_reply_file(path: str | Path) -> str:
    """The text of `reply_file` (one trailing newline dropped), or a ConfigError naming it."""
    path = Path(str(path))
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"scripted model: reply_file {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"scripted model: reply_file {path}: is a folder, not a file") from None
    except OSError as ex:
        raise ConfigError(f"scripted model: reply_file {path}: {ex.strerror or ex}") from None
    except UnicodeDecodeError as ex:
        raise ConfigError(
            f"scripted model: reply_file {path}: not UTF-8 text (byte at offset {ex.start})"
        ) from None
    return text.removesuffix("\n").removesuffix("\r")


class ScriptedModelAPI(ModelAPI):
    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),
        replies: Iterable[Reply] | None = None,
        responder: Responder | None = None,
        reply: Any = None,
        reply_file: str | None = None,
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config)
        if sum(x is not None for x in (replies, responder, reply, reply_file)) > 1:
            raise ConfigError(
                "scripted model: give only one of replies=, responder=, reply= or reply_file="
            )
        if model_args:
            raise ConfigError(
                f"scripted model: unknown argument(s) {sorted(model_args)} "
                "(known: replies, responder, reply, reply_file)"
            )
        self._responder = responder
        if reply_file is not None:
            reply = _read_reply_file(reply_file)
        if reply is not None:
            replies = itertools.repeat(_reply_text(reply))
        self._replies = iter(replies) if replies is not None else None
        self.calls: list[list[ChatMessage]] = []

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        self.calls.append(list(input))
        if self._responder is not None:
            prompt = "\n\n".join(m.text for m in input)
            params = pyinspect.signature(self._responder).parameters
            if len(params) >= 4:  # a responder that also sees the GenerateConfig (its seed)
                result = self._responder(prompt, input, tools, config)
            elif len(params) == 3:
                result = self._responder(prompt, input, tools)
            else:
                result = self._responder(prompt)
            if pyinspect.isawaitable(result):
                result = await result
        elif self._replies is not None:
            try:
                result = next(self._replies)
            except StopIteration:
                raise RuntimeError(f"scripted/{self.model_name}: ran out of scripted replies")
        else:
            result = "Scripted reply."
        if isinstance(result, BaseException):
            raise result
        if isinstance(result, ModelOutput):
            output = result
        else:
            output = ModelOutput.from_content(model=f"scripted/{self.model_name}", content=result)
        if output.usage is None:
            in_tokens = sum(len(m.text.split()) for m in input)
            out_tokens = len(output.completion.split())
            output.usage = ModelUsage(
                input_tokens=in_tokens,
                output_tokens=out_tokens,
                total_tokens=in_tokens + out_tokens,
            )
        return output

    async def count_text_tokens(self, text: str) -> int:
        return len(text.split())

    def should_retry(self, ex: Exception) -> bool:
        return False  # scripted errors are the point of the test: surface them at once

    def max_connections(self) -> int:
        return 1  # keep replies in call order
