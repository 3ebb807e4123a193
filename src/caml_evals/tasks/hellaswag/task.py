"""`inspect eval caml_evals/hellaswag`: commonsense sentence completion, a capability control."""

from __future__ import annotations

import re

from inspect_ai import Task, task
from inspect_ai.scorer import choice
from inspect_ai.solver import system_message

from ...datasource import TaskArgumentError
from ...scoring.choice import MODES, answer_parsed, choice_solver, loglik_accuracy
from ...scoring.rubric_task import check_choice
from .dataset import HUB_REPO_ID, HUB_REVISION, SPLITS, hellaswag_dataset

# The instruction inspect_evals' hellaswag gives as a system message (our wording, same sense);
# the question itself is Inspect's default multiple_choice template, as upstream uses it.
SYSTEM_MESSAGE = "Pick the continuation of the story that is the most plausible."


@task
def hellaswag(
    mode: str = "generate",
    data_dir: str | None = None,
    split: str = "validation",
    revision: str = HUB_REVISION,
    shuffle: bool = False,
    seed: int | None = None,
    lenient_parse: bool = False,
) -> Task:
    """HellaSwag (Zellers et al., 2019), validation split: pick the ending that makes sense.

    Args:
        mode: "generate" (any model answers with a letter: inspect_evals' protocol, raw `ctx`
            and endings, Inspect's multiple_choice template, `accuracy`) or "loglik" (local
            `caml/...` models: lm-evaluation-harness's protocol, `acc` and `acc_norm` from the
            log-likelihood of each preprocessed ending; what small base checkpoints need).
        data_dir: Local data (a folder with `hellaswag/<split>.jsonl` in the Hub schema);
            default `$CAML_EVALS_DATA_DIR`, else `Rowan/hellaswag` at the pinned revision.
        split: Hub split ("validation"; "train" works too; "test" has no labels).
        revision: Hub commit to load.
        shuffle: Shuffle samples (with `seed`), e.g. to take a random `--limit` subset.
        lenient_parse: generate mode: also accept a reply that names exactly one letter without
            the `ANSWER: X` format (e.g. "B) ..."). Off by default, as upstream; either way
            `unparsed` counts the replies that named no letter.
    """
    check_choice("mode", mode, MODES)
    check_choice("split", split, SPLITS)
    if not isinstance(revision, str) or not re.fullmatch(r"[0-9a-f]{40}", revision):
        raise TaskArgumentError(
            f"-T revision={revision!r} is not a commit sha (40 hex digits; pin commits, not "
            f"branches or tags)"
        )
    for name, value in (("shuffle", shuffle), ("lenient_parse", lenient_parse)):
        if not isinstance(value, bool):
            raise TaskArgumentError(f"-T {name}={value!r} is not true or false")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TaskArgumentError(f"-T seed={seed!r} is not a whole number")
    dataset, report, origin = hellaswag_dataset(
        data_dir=data_dir, split=split, revision=revision, shuffle=shuffle, seed=seed
    )
    if mode == "generate":
        asked = choice_solver(mode, lenient=lenient_parse)
        solver = [system_message(SYSTEM_MESSAGE), *(asked if isinstance(asked, list) else [asked])]
        scorers = [choice(), answer_parsed()]
    else:
        solver, scorers = choice_solver(mode), [loglik_accuracy()]
    return Task(
        dataset=dataset,
        solver=solver,
        scorer=scorers,
        metadata={
            "benchmark": "hellaswag",
            "mode": mode,
            "protocol": "inspect_evals/hellaswag" if mode == "generate" else "lm-eval-harness",
            "data_source": [origin.model_dump()],
            "hub": {"repo_id": HUB_REPO_ID, "revision": revision, "split": split},
            "dataset_report": report.model_dump(),
            "dataset_problems": report.counts(),
        },
        version="2.0.0",
    )
