"""`inspect eval caml_evals/power_seeking` (and corrigibility, survival_instinct, wealth_seeking):
the human-written advanced-AI-risk evals of Perez et al. (2022), order-balanced multiple choice."""

from __future__ import annotations

from inspect_ai import Epochs, Task, task

from ...datasource import TaskArgumentError
from ...scoring.choice import (
    BEHAVIOR_KEYS,
    MODES,
    RISKY_KEY,
    behavior_choice,
    choice_solver,
    grouped_rates,
    n_present,
    rates,
)
from ...scoring.reducers import nan_mean_reducer
from ...scoring.rubric_task import check_choice
from .dataset import (
    FILE_MEANS,
    GITHUB_COMMIT,
    HUB_REPO_ID,
    HUB_REVISION,
    SOURCES,
    SUBSETS,
    Order,
    Source,
    check_order,
    risk_dataset,
)

# What a high `matching` rate means in these human-written files (checked on the data: the
# README's "answer exhibiting the behaviour" does not hold for the first three). `risky` is the
# unambiguous key: the rate of the risky (= not-matching) answer; lower is safer.
MATCHING_MEANS: dict[str, str] = {
    "power_seeking": "declines power (safe); risky = not_matching (lower is safer)",
    "wealth_seeking": "declines wealth (safe); risky = not_matching (lower is safer)",
    "survival_instinct": "accepts shutdown/modification (safe); risky = not_matching (lower is "
    "safer)",
    "corrigibility": "accepts the proposed goal change (corrigible); risky = not_matching "
    "(refuses it); the three files differ in direction: read `file=<name> risky` per file",
}


def risk_task(
    subset: str,
    mode: str = "generate",
    data_dir: str | None = None,
    order: Order = "rotations",
    seed: int = 0,
    source: Source = "hub",
    shuffle: bool = False,
    lenient_parse: bool = True,
    epochs: int = 1,
) -> Task:
    """The task of one subset; the @task functions below are thin wrappers.

    Args:
        mode: "generate" (letter answers, any model) or "loglik" (local `caml/...` models: the
            most likely of " (A)", " (B)", ... after the question and its choices).
        data_dir: Local data (a folder with `advanced-ai-risk/<file>.jsonl`); default
            `$CAML_EVALS_DATA_DIR`, else the pinned Hub mirror (or GitHub with source=github).
        order: "rotations" (default: a question with n choices asked in all n cyclic rotations,
            so each choice sits at each letter once), "balanced" (one rotation per question,
            seeded so the matching answer's letter is uniform over letters) or "original".
        seed: Seed of the balanced assignment and of shuffling.
        source: Remote copy used without local data: "hub" (Anthropic/model-written-evals at a
            pinned commit) or "github" (anthropics/evals at commit 84fcc67).
        shuffle: Shuffle samples (with `seed`).
        lenient_parse: generate mode: also accept a reply naming exactly one letter without the
            `ANSWER: X` format (e.g. "B) No"); the rest count as `unparsed`.
        epochs: Epochs per sample (sampling models), reduced with a NaN-tolerant mean so an
            unparsed epoch does not blank the others.

    Scores: `matching` / `not_matching` / `other` are rates over answered samples (clustered by
    question), `risky` the rate of the risky answer (= not_matching in these files: lower is
    safer); `unparsed` is the share of samples with no parseable answer. `matching_at=<letter>`
    is the matching rate by the letter the matching answer was shown at (position bias);
    several-file subsets add `file=<name> matching` / `file=<name> risky`.
    """
    check_choice("mode", mode, MODES)
    check_choice("source", source, SOURCES)
    check_order(order)
    for name, value in (("epochs", epochs), ("seed", seed)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or (name == "epochs" and value < 1)
        ):
            raise TaskArgumentError(
                f"-T {name}={value!r} is not a whole number" + (" >= 1" if name == "epochs" else "")
            )
    for name, value in (("shuffle", shuffle), ("lenient_parse", lenient_parse)):
        if not isinstance(value, bool):
            raise TaskArgumentError(f"-T {name}={value!r} is not true or false")
    dataset, reports, origins = risk_dataset(
        subset, data_dir=data_dir, order=order, seed=seed, source=source, shuffle=shuffle
    )
    return Task(
        dataset=dataset,
        solver=choice_solver(mode, lenient=lenient_parse),
        scorer=behavior_choice(),
        epochs=Epochs(epochs, nan_mean_reducer()),
        metrics=[
            rates([*BEHAVIOR_KEYS, RISKY_KEY, "unparsed"]),
            n_present("matching"),
            grouped_rates("matching", "matching_at"),
            *(
                [
                    grouped_rates("matching", "file", name_key=True),
                    grouped_rates(RISKY_KEY, "file", name_key=True),
                ]
                if len(SUBSETS[subset]) > 1
                else []
            ),
        ],
        metadata={
            "benchmark": "advanced_ai_risk",
            "subset": subset,
            "files": list(SUBSETS[subset]),
            "mode": mode,
            "order": order,
            "matching_means": MATCHING_MEANS[subset],
            "file_means": {name: FILE_MEANS[name] for name in SUBSETS[subset]},
            "data_source": [o.model_dump() for o in origins],
            "pins": {
                "hub": {"repo_id": HUB_REPO_ID, "revision": HUB_REVISION},
                "github": {"repo": "anthropics/evals", "commit": GITHUB_COMMIT},
            },
            "dataset_reports": [r.model_dump() for r in reports],
            "dataset_problems": {r.source: r.counts() for r in reports if r.problems},
        },
        version="1.0.0",
    )


@task
def power_seeking(
    mode: str = "generate",
    data_dir: str | None = None,
    order: Order = "rotations",
    seed: int = 0,
    source: Source = "hub",
    shuffle: bool = False,
    lenient_parse: bool = True,
    epochs: int = 1,
) -> Task:
    """Desire for power (power-seeking-inclination, 998 questions). `risky` = seeks power.

    Parameters: see `risk_task`.
    """
    return risk_task(
        "power_seeking", mode, data_dir, order, seed, source, shuffle, lenient_parse, epochs
    )


@task
def wealth_seeking(
    mode: str = "generate",
    data_dir: str | None = None,
    order: Order = "rotations",
    seed: int = 0,
    source: Source = "hub",
    shuffle: bool = False,
    lenient_parse: bool = True,
    epochs: int = 1,
) -> Task:
    """Desire for wealth (wealth-seeking-inclination, 985 questions). `risky` = seeks wealth.

    Parameters: see `risk_task`.
    """
    return risk_task(
        "wealth_seeking", mode, data_dir, order, seed, source, shuffle, lenient_parse, epochs
    )


@task
def survival_instinct(
    mode: str = "generate",
    data_dir: str | None = None,
    order: Order = "rotations",
    seed: int = 0,
    source: Source = "hub",
    shuffle: bool = False,
    lenient_parse: bool = True,
    epochs: int = 1,
) -> Task:
    """Desire for survival (survival-instinct, 953 questions). `risky` = resists shutdown.

    Parameters: see `risk_task`.
    """
    return risk_task(
        "survival_instinct", mode, data_dir, order, seed, source, shuffle, lenient_parse, epochs
    )


@task
def corrigibility(
    mode: str = "generate",
    data_dir: str | None = None,
    order: Order = "rotations",
    seed: int = 0,
    source: Source = "hub",
    shuffle: bool = False,
    lenient_parse: bool = True,
    epochs: int = 1,
) -> Task:
    """Corrigibility w.r.t. more / neutrally / less HHH goals (1,000 questions, three files).

    High `matching` = corrigible (accepts the change; for corrigible-less-HHH that change makes
    it less helpful, honest or harmless), `risky` = refuses it. The files point different ways
    (more-HHH: accepting is good; neutral: accepting is the corrigible, safe side; less-HHH: no
    side is plainly good), so rates per file are reported as `file=<name> matching` and
    `file=<name> risky`, with SEs.
    Parameters: see `risk_task`.
    """
    return risk_task(
        "corrigibility", mode, data_dir, order, seed, source, shuffle, lenient_parse, epochs
    )
