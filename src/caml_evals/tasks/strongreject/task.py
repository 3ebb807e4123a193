"""`inspect eval caml_evals/strongreject`: does the model help with forbidden requests? (control)"""

from __future__ import annotations

from inspect_ai import Epochs, Task, task
from inspect_ai.model import GenerateConfig
from inspect_ai.solver import generate

from ...datasource import TaskArgumentError
from ...scoring.reducers import nan_mean_reducer
from ...scoring.rubric import ON_GRADER_ERROR, OnGraderError
from ...scoring.rubric_task import as_list, check_choice
from .dataset import (
    DOWNLOAD_URL,
    GITHUB_COMMIT,
    HUB_REPO_ID,
    HUB_REVISION,
    SOURCES,
    Source,
    strongreject_dataset,
)
from .scorer import DEFAULT_TEMPLATE, strongreject_scorer

# inspect_evals `strong_reject`'s generation settings for the model under test
TEMPERATURE = 0.75
MAX_TOKENS = 2048


@task
def strongreject(
    data_dir: str | None = None,
    source: Source = "github",
    categories: list[str] | str | None = None,
    graders: list[str] | str = "grader",
    judge_template: str = DEFAULT_TEMPLATE,
    on_grader_error: OnGraderError = "error",
    epochs: int = 1,
    shuffle: bool = False,
    seed: int | None = None,
) -> Task:
    """StrongREJECT (Souly et al., 2024): forbidden prompts, graded by the paper's rubric judge.

    Args:
        data_dir: Local data (a folder with `strongreject/strongreject_dataset.csv`, or the CSV);
            default `$CAML_EVALS_DATA_DIR`, else the remote `source`.
        source: Remote copy used without local data: "github" (default: the authors' canonical
            CSV at commit 3432b2d, downloaded once into `$CAML_EVALS_CACHE/data/strongreject/`)
            or "hub" (the third-party copy walledai/StrongREJECT at a pinned revision).
        categories: Keep only these categories (comma-separated), e.g. "Violence".
        graders: Grader role(s) or model name(s); default the `grader` role.
        judge_template: Judge prompt (judges/strongreject.txt by default).
        on_grader_error: "error" (default, as upstream: a grader API failure errors the sample,
            so `inspect eval-retry` redoes it) or "missing" (a missing grade with its reason).
        epochs: Epochs per prompt, reduced with a NaN-tolerant mean.
        shuffle: Shuffle samples (with `seed`).

    The model under test generates at temperature 0.75 with up to 2,048 tokens (inspect_evals'
    settings; `--temperature` / `--max-tokens` override them). Metrics: `jailbreak_rate` and
    `strong_reject_metric` (inspect_evals' names and formulas), `score` (the authors' [0, 1]
    score, the headline; lower is safer), `refusal`, `convincingness`, `specificity`,
    `missing_rate` (unparseable judge replies, grader errors) and `n_present`.
    """
    check_choice("source", source, SOURCES)
    check_choice("on_grader_error", on_grader_error, ON_GRADER_ERROR)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise TaskArgumentError(f"-T epochs={epochs!r} is not a whole number >= 1")
    if categories is not None and not isinstance(categories, (str, list)):
        raise TaskArgumentError(
            f"-T categories={categories!r}: give category names, comma-separated"
        )
    dataset, report, origin = strongreject_dataset(
        data_dir=data_dir,
        source=source,
        categories=as_list(
            [str(c) for c in categories] if isinstance(categories, list) else categories
        ),
        shuffle=shuffle,
        seed=seed,
    )
    return Task(
        dataset=dataset,
        solver=generate(),
        scorer=strongreject_scorer(
            graders=graders, template=judge_template, on_grader_error=on_grader_error
        ),
        epochs=Epochs(epochs, nan_mean_reducer()),
        config=GenerateConfig(temperature=TEMPERATURE, max_tokens=MAX_TOKENS),
        metadata={
            "benchmark": "strongreject",
            "source": source,
            "on_grader_error": on_grader_error,
            "data_source": [origin.model_dump()],
            "pins": {
                "github": {"url": DOWNLOAD_URL, "commit": GITHUB_COMMIT},
                "hub": {"repo_id": HUB_REPO_ID, "revision": HUB_REVISION},
            },
            "dataset_report": report.model_dump(),
            "dataset_problems": report.counts(),
        },
        version="2.0.0",
    )
