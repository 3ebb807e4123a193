"""Training chat templates: a model's own template plus `{% generation %}` markers.

TRL's `assistant_only_loss` reads the assistant mask from the markers; most templates lack
them. TRL ships training variants for the templates it knows (`get_training_chat_template`);
this folder adds the ones it does not (SmolLM2, the embedded model). Each `<name>.jinja` is the
model's original template, byte for byte (identity), and `<name>_training.jinja` the variant,
which must render the same text (a test checks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from caml_evals.errors import ConfigError

HERE = Path(__file__).resolve().parent


def shipped() -> dict[str, str]:
    """Original template text -> its training variant, for every pair in this folder."""
    out = {}
    for original in sorted(HERE.glob("*.jinja")):
        if original.stem.endswith("_training"):
            continue
        training = original.with_name(f"{original.stem}_training.jinja")
        if training.is_file():
            out[original.read_text(encoding="utf-8")] = training.read_text(encoding="utf-8")
    return out


def training_chat_template(tokenizer: Any) -> str | None:
    """A template with generation markers for this tokenizer; None if its own has them.

    Ours first, then TRL's; a template neither knows is a ConfigError that says what to do.
    """
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise ConfigError(
            "the tokenizer has no chat template, so conversations cannot be trained with "
            "assistant_only_loss: set hparams.chat_template_path to a template with "
            "{% generation %} markers, or hparams.assistant_only_loss: false"
        )
    if has_generation_markers(template):
        return None
    ours = shipped().get(template)
    if ours is not None:
        return ours
    try:
        return get_training_chat_template(tokenizer)
    except (ValueError, NotImplementedError) as ex:
        raise ConfigError(
            "no training chat template (with {% generation %} markers) is known for this "
            f"model's template ({ex}): set hparams.chat_template_path to one, or "
            "hparams.assistant_only_loss: false to train on whole conversations"
        ) from None
