"""Model providers: the embedded SmolLM2 model, local checkpoints, and a scripted model for tests."""

from .embedded import EmbeddedModelMissing, ensure_embedded_checkpoint, resolve_model_path
from .scripted import ScriptedModelAPI

__all__ = [
    "EmbeddedModelMissing",
    "ScriptedModelAPI",
    "ensure_embedded_checkpoint",
    "resolve_model_path",
]
