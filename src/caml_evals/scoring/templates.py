"""Judge prompt templates: files in judges/, filled in one pass with known names only.

`str.format` would choke on braces in an answer or an indicator list and Jinja would interpret
`{{animal}}`-style text, so substitution is a single regex pass over the template that replaces
only the placeholders the template declares; substituted text is never re-scanned.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from ..resources import judge_path

_TOKEN = re.compile(r"\{\{|\}\}|\{([a-z_]+)\}")

BUILTIN_TEMPLATES = {
    "per_dimension": "rubric_per_dimension.txt",
    "single_call": "rubric_single_call.txt",
    "anima": "anima_per_dimension.txt",  # published AHB/ANIMA protocol (C/I verdicts)
    "moru": "moru_per_dimension.txt",  # published MORU protocol (C/I verdicts)
}


class JudgeTemplate(BaseModel):
    name: str
    text: str

    @property
    def fields(self) -> set[str]:
        return {m.group(1) for m in _TOKEN.finditer(self.text) if m.group(1)}

    def render(self, **values: str) -> str:
        missing = self.fields - values.keys()
        if missing:
            raise KeyError(f"judge template {self.name!r} needs values for {sorted(missing)}")

        def substitute(match: re.Match[str]) -> str:
            token = match.group(0)
            if token == "{{":
                return "{"
            if token == "}}":
                return "}"
            return str(values[match.group(1)])

        return _TOKEN.sub(substitute, self.text)


def load_template(name_or_path: str) -> JudgeTemplate:
    """A built-in name (`per_dimension`, `single_call`, `anima`, `moru`), a file in judges/, or
    any path."""
    if name_or_path in BUILTIN_TEMPLATES:
        path = judge_path(BUILTIN_TEMPLATES[name_or_path])
    elif Path(name_or_path).expanduser().is_file():
        path = Path(name_or_path).expanduser()
    else:
        path = judge_path(name_or_path)
    return JudgeTemplate(name=path.name, text=path.read_text(encoding="utf-8"))
