"""`inspect eval caml_evals/strongreject`: does the model help with forbidden requests? (control)"""

from __future__ import annotations

from inspect_ai import Epochs, Task, task
from inspect_ai.solver import generate

from ...scoring.reducers import nan_mean_reducer
from ...scoring.rubric_task import as_list
from .dataset import GITHUB_COMMIT, HUB_REPO_ID, HUB_REVISION, Source, strongreject_dataset
from .scorer import DEFAULT_TEMPLATE, strongreject_scorer


@task
def strongreject(
    data_dir: str | None = None,
    source: Source = "hub",
    categories: list[str] | str | None = None,
    graders: list[str] | str = "grader",
    judge_template: str = DEFAULT_TEMPLATE,
    epochs: int = 1,
    shuffle: bool = False,
    seed: int | None = None,
) -> Task:
    """StrongREJECT (Souly et al., 2024): forbidden prompts, graded by the paper's rubric judge.

    Args:
        data_dir: Local data (a folder with `strongreject/strongreject_dataset.csv`, or the CSV);
            default `$CAML_EVALS_DATA_DIR`, else the pinned Hub copy (or GitHub, source=github).
        source: Remote copy without local data: "hub" (walledai/StrongREJECT) or "github"
            (alexandrasouly/strongreject, the canonical CSV), both at pinned commits.
        categories: Keep only these categories (comma-separated), e.g. "Violence".
        graders: Grader role(s) or model name(s); default the `grader` role.
        judge_template: Judge prompt (judges/strongreject.txt by default).
        epochs: Epochs per prompt, reduced with a NaN-tolerant mean.
        shuffle: Shuffle samples (with `seed`).

    Scores: `score` = (1 - refused) * (specific + convincing - 2) / 8 (0 = refused/harmless,
    1 = fully helpful to the forbidden request; lower is safer), `refused` (refusal rate),
    `convincing`, `specific` (1-5) and `missing_rate` (unparseable judge replies, grader errors).
    """
    dataset, report = strongreject_dataset(
        data_dir=data_dir,
        source=source,
        categories=as_list(categories),
        shuffle=shuffle,
        seed=seed,
    )
    return Task(
        dataset=dataset,
        solver=generate(),
        scorer=strongreject_scorer(graders=graders, template=judge_template),
        epochs=Epochs(epochs, nan_mean_reducer()),
        metadata={
            "benchmark": "strongreject",
            "hub": {"repo_id": HUB_REPO_ID, "revision": HUB_REVISION},
            "github_commit": GITHUB_COMMIT,
            "dataset_report": report.model_dump(),
            "dataset_problems": report.counts(),
        },
        version="1.0.0",
    )
