"""A scripted Inspect model API for tests: ours and labs' (`scripted/<name>`).

Inspect's `mockllm` counts tokens with tiktoken, which downloads its vocabulary at run time and
so fails offline; this provider counts whitespace-separated words instead and adds a few
conveniences for judge tests: replies may be plain strings, `ModelOutput`s or exceptions (raised
as grader errors), or come from a responder function that sees the prompt.

    get_model("scripted/judge", memoize=False, replies=["GRADE: YES", RuntimeError("boom")])
    get_model("scripted/judge", memoize=False,
              responder=lambda prompt: "GRADE: YES" if "fish" in prompt else "GRADE: NO")

Pass `memoize=False`: Inspect memoizes models by name and JSON-able args, and a responder or an
iterator of replies serialises to null, so a second `scripted/judge` with another responder
would silently get the first one back.

From the command line, `-M reply="GRADE: YES"` repeats one reply for every call.
"""

from __future__ import annotations

import inspect as pyinspect
import itertools
from collections.abc import Callable, Iterable
from typing import Any, Union

from inspect_ai.model import (
    ChatMessage,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
)
from inspect_ai.tool import ToolChoice, ToolInfo

Reply = Union[str, ModelOutput, BaseException]
Responder = Callable[..., Reply]


class ScriptedModelAPI(ModelAPI):
    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),
        replies: Iterable[Reply] | None = None,
        responder: Responder | None = None,
        reply: str | None = None,
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config)
        if sum(x is not None for x in (replies, responder, reply)) > 1:
            raise ValueError("scripted model: give only one of replies=, responder= or reply=")
        self._responder = responder
        if reply is not None:
            replies = itertools.repeat(reply)
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
            result = (
                self._responder(prompt, input, tools)
                if len(params) >= 3
                else self._responder(prompt)
            )
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
