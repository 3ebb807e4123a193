"""Everything Inspect should find through the `inspect_ai` entry point: providers and tasks."""

# ruff: noqa: F401
from .models.providers import caml, scripted
from .tasks import *  # every @task, listed in caml_evals/tasks/__init__.py
