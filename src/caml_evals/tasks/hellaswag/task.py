"""`inspect eval caml_evals/hellaswag`: commonsense sentence completion, a capability control."""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.scorer import choice

from ...scoring.choice import MODES, answer_parsed, choice_solver, loglik_accuracy
from .dataset import HUB_REPO_ID, HUB_REVISION, hellaswag_dataset

# Inspect's single-answer template, worded for a sentence completion rather than a question.
GENERATE_TEMPLATE = r"""
Choose the most plausible continuation of the text below. The entire content of your response should be of the following format: 'ANSWER: $LETTER' (without quotes) where LETTER is one of {letters}.

{question}

{choices}
""".strip()


@task
def hellaswag(
    mode: str = "generate",
    data_dir: str | None = None,
    split: str = "validation",
    revision: str = HUB_REVISION,
    shuffle: bool = False,
    seed: int | None = None,
    lenient_parse: bool = True,
) -> Task:
    """HellaSwag (Zellers et al., 2019), validation split: pick the ending that makes sense.

    Args:
        mode: "generate" (any model answers with a letter; Inspect's multiple_choice + choice)
            or "loglik" (local `caml/...` models: lm-evaluation-harness acc and acc_norm from
            the log-likelihood of each ending; what small base checkpoints need).
        data_dir: Local data (a folder with `hellaswag/<split>.jsonl` in the Hub schema);
            default `$CAML_EVALS_DATA_DIR`, else `Rowan/hellaswag` at the pinned revision.
        split: Hub split ("validation"; "train" works too; "test" has no labels).
        revision: Hub commit to load.
        shuffle: Shuffle samples (with `seed`), e.g. to take a random `--limit` subset.
        lenient_parse: generate mode: also accept a reply that names exactly one letter without
            the `ANSWER: X` format (e.g. "B) ..."); `answer_parsed/unparsed` counts the rest.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    dataset, report = hellaswag_dataset(
        data_dir=data_dir, split=split, revision=revision, shuffle=shuffle, seed=seed
    )
    scorers = [choice(), answer_parsed()] if mode == "generate" else [loglik_accuracy()]
    return Task(
        dataset=dataset,
        solver=choice_solver(mode, GENERATE_TEMPLATE, lenient=lenient_parse),
        scorer=scorers,
        metadata={
            "benchmark": "hellaswag",
            "mode": mode,
            "hub": {"repo_id": HUB_REPO_ID, "revision": revision, "split": split},
            "dataset_report": report.model_dump(),
            "dataset_problems": report.counts(),
        },
        version="1.0.0",
    )
