"""Inspect model providers registered through the `inspect_ai` entry point."""

from inspect_ai.model import ModelAPI, modelapi


@modelapi(name="caml")
def caml() -> type[ModelAPI]:
    """`caml/smollm2` (embedded default) or `caml/<path to a local checkpoint>`."""
    from .local import LocalTransformersAPI

    return LocalTransformersAPI


@modelapi(name="scripted")
def scripted() -> type[ModelAPI]:
    """`scripted/<anything>`: replies given in code; for offline tests."""
    from .scripted import ScriptedModelAPI

    return ScriptedModelAPI
