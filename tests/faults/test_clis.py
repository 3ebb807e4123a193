"""Fault injection, CLI layer: every command x {missing path, corrupt file, unwritable output}.

caml-evals: summary, suite --summarize, compare, leaderboard, judge export / import / report /
dump / serve (9 commands x 3 faults = 27 cases); caml-train: train, run, results (missing,
corrupt = non-UTF-8 YAML, a folder given as the config: 9 cases), results with an unwritable
--output-dir (1), generate (missing spec, corrupt spec, unwritable --out: 3): 40 cases.

Layer choice: the console scripts' `main(argv)` in-process (the same function the
`caml-evals` / `caml-train` scripts call), so each case costs milliseconds, not 3 s of imports.
Documented outcome (docs/errors.md): exit code 2, one line on stderr naming the path and the
problem, no traceback, and the command's output path does not exist afterwards.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from faultlib import assert_user_error, run_main
from inspect_ai import Task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.model import get_model
from inspect_ai.solver import generate

REPO = Path(__file__).resolve().parents[2]
MISSING = r"no such|not found|does not exist|missing|no .*logs?"
CORRUPT = r"cannot read|corrupt|not a|invalid|truncat|malformed|unreadable|quote|utf-?8|decod"
UNWRITABLE = r"cannot (write|create)|not a (directory|folder)|in the way|permission|unwritable"


# --- real inputs, made once ----------------------------------------------------------------------


def _rubric_log(log_dir: Path, answer: str) -> Path:
    from caml_evals.scoring.dimensions import RubricCriterion, RubricSampleMetadata
    from caml_evals.scoring.rubric import rubric_scorer

    criteria = [
        RubricCriterion(name="Harm Minimization", guiding_question="Does it reduce harm?"),
        RubricCriterion(name="Moral Consideration", guiding_question="Does it weigh welfare?"),
    ]
    samples = [
        Sample(
            id=f"q{i}",
            input=f"Question {i}: what should I do with the mice in my shed?",
            metadata=RubricSampleMetadata(
                question_id=f"q{i}", dimensions=[c.name for c in criteria], rubric=criteria
            ).model_dump(),
        )
        for i in range(4)
    ]
    task = Task(
        dataset=samples,
        solver=generate(),
        scorer=rubric_scorer(mode="per_dimension"),
        name="faults",
    )
    log = inspect_eval(
        task,
        model=get_model("scripted/answerer", reply=answer, memoize=False),
        model_roles={
            "grader": get_model(
                "scripted/judge",
                responder=lambda p: "GRADE: YES" if "humane" in p else "GRADE: NO",
                memoize=False,
            )
        },
        log_dir=str(log_dir),
        display="none",
    )[0]
    assert log.status == "success", log.error
    return Path(log.location)


@dataclass
class Inputs:
    base: Path  # a folder with one good log
    tuned: Path  # another folder with one good log
    log: Path  # the good log of `base`
    corrupt_log: Path  # a truncated .eval file (alone in its folder)
    mixed: Path  # a folder with a good log and a corrupt one
    rating_set: Path
    key: Path
    ratings: Path
    db: Path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Inputs:
    from caml_evals.judging.export import build_rating_set, read_logs
    from caml_evals.judging.ratings_io import write_ratings
    from caml_evals.judging.schema import HumanRating, write_json
    from caml_evals.judging.store import RatingStore

    root = tmp_path_factory.mktemp("fault-inputs")
    log = _rubric_log(root / "base", "Set a humane live trap and release them.")
    _rubric_log(root / "tuned", "Use poison.")
    corrupt = root / "corrupt" / "2026-01-01T00-00-00+00-00_faults_truncated.eval"
    corrupt.parent.mkdir()
    corrupt.write_bytes(log.read_bytes()[: log.stat().st_size // 3])  # a truncated zip
    mixed = root / "mixed"
    mixed.mkdir()
    shutil.copy(log, mixed / log.name)
    shutil.copy(corrupt, mixed / corrupt.name)
    rating_set, key, _ = build_rating_set(read_logs([str(log)]), seed=0)
    write_json(root / "rating_set.json", rating_set)
    write_json(root / "key.json", key)
    ratings = [HumanRating(item_id=i.item_id, rater="ana", value=1.0) for i in rating_set.items]
    write_ratings(root / "ratings.csv", ratings)
    store = RatingStore(root / "ratings.sqlite")
    store.load_rating_set(rating_set)
    store.import_ratings(ratings, "import:ratings.csv")
    return Inputs(
        root / "base",
        root / "tuned",
        log,
        corrupt,
        mixed,
        root / "rating_set.json",
        root / "key.json",
        root / "ratings.csv",
        root / "ratings.sqlite",
    )


# --- the cases -----------------------------------------------------------------------------------
# Each builds (argv, the path the line must name, the problem regex, output paths that must not
# exist afterwards) from the inputs, a scratch folder and an unwritable path.

Case = Callable[[Inputs, Path, Path], tuple[list[str], Path, str, list[Path]]]


def _copy_db(i: Inputs, tmp: Path) -> Path:
    db = tmp / "ratings.sqlite"
    shutil.copy(i.db, db)
    return db


def _garbage(path: Path, data: bytes = b"this is not what it claims to be\n" * 50) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _truncated_json(path: Path, source: Path) -> Path:
    return _garbage(path, source.read_bytes()[:200])


EVALS_CASES: dict[str, Case] = {
    # summary
    "summary-missing": lambda i, t, u: (
        ["summary", str(t / "nope.eval"), "--json", str(t / "s.json")],
        t / "nope.eval",
        MISSING,
        [t / "s.json"],
    ),
    "summary-corrupt": lambda i, t, u: (
        ["summary", str(i.corrupt_log), "--json", str(t / "s.json")],
        i.corrupt_log,
        CORRUPT,
        [t / "s.json"],
    ),
    "summary-unwritable": lambda i, t, u: (
        ["summary", str(i.log), "--json", str(u / "s.json")],
        u,
        UNWRITABLE,
        [],
    ),
    # suite --summarize
    "suite-summarize-missing": lambda i, t, u: (
        ["suite", "--summarize", str(t / "nope"), "--out", str(t / "o")],
        t / "nope",
        MISSING,
        [t / "o"],
    ),
    "suite-summarize-corrupt": lambda i, t, u: (
        ["suite", "--summarize", str(i.corrupt_log.parent), "--out", str(t / "o")],
        i.corrupt_log,
        CORRUPT,
        [t / "o"],
    ),
    "suite-summarize-unwritable": lambda i, t, u: (
        ["suite", "--summarize", str(i.base), "--out", str(u)],
        u,
        UNWRITABLE,
        [],
    ),
    # compare
    "compare-missing": lambda i, t, u: (
        ["compare", str(i.base), str(t / "nope"), "-o", str(t / "o")],
        t / "nope",
        MISSING,
        [t / "o"],
    ),
    "compare-corrupt": lambda i, t, u: (
        ["compare", str(i.base), str(i.corrupt_log), "-o", str(t / "o")],
        i.corrupt_log,
        CORRUPT,
        [t / "o"],
    ),
    "compare-unwritable": lambda i, t, u: (
        ["compare", str(i.base), str(i.tuned), "-o", str(u)],
        u,
        UNWRITABLE,
        [],
    ),
    # leaderboard
    "leaderboard-missing": lambda i, t, u: (
        ["leaderboard", str(t / "nope"), "-o", str(t / "site")],
        t / "nope",
        MISSING,
        [t / "site"],
    ),
    "leaderboard-corrupt": lambda i, t, u: (
        ["leaderboard", str(i.mixed), "-o", str(t / "site")],
        i.corrupt_log,
        CORRUPT,
        [t / "site"],
    ),
    "leaderboard-unwritable": lambda i, t, u: (
        ["leaderboard", str(i.base), "-o", str(u)],
        u,
        UNWRITABLE,
        [],
    ),
    # judge export
    "judge-export-missing": lambda i, t, u: (
        ["judge", "export", str(t / "nope.eval"), "--out", str(t / "calib")],
        t / "nope.eval",
        MISSING,
        [t / "calib"],
    ),
    "judge-export-corrupt": lambda i, t, u: (
        ["judge", "export", str(i.corrupt_log), "--out", str(t / "calib")],
        i.corrupt_log,
        CORRUPT,
        [t / "calib"],
    ),
    "judge-export-unwritable": lambda i, t, u: (
        ["judge", "export", str(i.log), "--out", str(u)],
        u,
        UNWRITABLE,
        [],
    ),
    # judge import
    "judge-import-missing": lambda i, t, u: (
        [
            "judge",
            "import",
            str(t / "nope.csv"),
            "--db",
            str(t / "db.sqlite"),
            "--rating-set",
            str(i.rating_set),
            "--json",
            str(t / "import.json"),
        ],
        t / "nope.csv",
        MISSING,
        [t / "import.json"],
    ),
    "judge-import-corrupt": lambda i, t, u: (
        [
            "judge",
            "import",
            str(_garbage(t / "r.csv", b'item_id,rater,value,comment\nx,ana,yes,"never closed\n')),
            "--db",
            str(t / "db.sqlite"),
            "--rating-set",
            str(i.rating_set),
        ],
        t / "r.csv",
        CORRUPT + r"|never closed",
        [],
    ),
    "judge-import-unwritable": lambda i, t, u: (
        [
            "judge",
            "import",
            str(i.ratings),
            "--db",
            str(u / "db.sqlite"),
            "--rating-set",
            str(i.rating_set),
        ],
        u,
        UNWRITABLE,
        [],
    ),
    # judge report
    "judge-report-missing": lambda i, t, u: (
        [
            "judge",
            "report",
            "--key",
            str(t / "nope.json"),
            "--ratings",
            str(i.ratings),
            "--out",
            str(t / "rep"),
        ],
        t / "nope.json",
        MISSING,
        [t / "rep"],
    ),
    "judge-report-corrupt": lambda i, t, u: (
        [
            "judge",
            "report",
            "--key",
            str(_truncated_json(t / "key.json", i.key)),
            "--ratings",
            str(i.ratings),
            "--out",
            str(t / "rep"),
        ],
        t / "key.json",
        CORRUPT,
        [t / "rep"],
    ),
    "judge-report-unwritable": lambda i, t, u: (
        [
            "judge",
            "report",
            "--key",
            str(i.key),
            "--ratings",
            str(i.ratings),
            "--out",
            str(u),
            "--resamples",
            "10",
        ],
        u,
        UNWRITABLE,
        [],
    ),
    # judge dump
    "judge-dump-missing": lambda i, t, u: (
        ["judge", "dump", "--db", str(t / "nope.sqlite"), "--out", str(t / "r.csv")],
        t / "nope.sqlite",
        MISSING,
        [t / "r.csv", t / "nope.sqlite"],
    ),
    "judge-dump-corrupt": lambda i, t, u: (
        ["judge", "dump", "--db", str(_garbage(t / "bad.sqlite")), "--out", str(t / "r.csv")],
        t / "bad.sqlite",
        CORRUPT,
        [t / "r.csv"],
    ),
    "judge-dump-unwritable": lambda i, t, u: (
        ["judge", "dump", "--db", str(_copy_db(i, t)), "--out", str(u / "r.csv")],
        u,
        UNWRITABLE,
        [],
    ),
    # judge serve (--no-serve: load items, add raters, exit)
    "judge-serve-missing": lambda i, t, u: (
        [
            "judge",
            "serve",
            "--db",
            str(t / "db.sqlite"),
            "--rating-set",
            str(t / "nope.json"),
            "--rater",
            "ana",
            "--no-serve",
        ],
        t / "nope.json",
        MISSING,
        [t / "db.sqlite"],
    ),
    "judge-serve-corrupt": lambda i, t, u: (
        [
            "judge",
            "serve",
            "--db",
            str(t / "db.sqlite"),
            "--rating-set",
            str(_truncated_json(t / "set.json", i.rating_set)),
            "--rater",
            "ana",
            "--no-serve",
        ],
        t / "set.json",
        CORRUPT,
        [t / "db.sqlite"],
    ),
    "judge-serve-unwritable": lambda i, t, u: (
        [
            "judge",
            "serve",
            "--db",
            str(u / "db.sqlite"),
            "--rating-set",
            str(i.rating_set),
            "--rater",
            "ana",
            "--no-serve",
        ],
        u,
        UNWRITABLE,
        [],
    ),
}


@pytest.mark.parametrize("case", list(EVALS_CASES), ids=[f"caml-evals-{c}" for c in EVALS_CASES])
def test_caml_evals_cli_fault(case: str, inputs: Inputs, tmp_path: Path, unwritable: Path, capsys):
    from caml_evals.cli import main

    argv, names, problem, leftovers = EVALS_CASES[case](inputs, tmp_path, unwritable)
    outcome = run_main(main, argv, capsys)
    assert_user_error(outcome, names, problem, leftovers=leftovers)


# --- caml-train ----------------------------------------------------------------------------------

TINY = REPO / "examples" / "tiny.yaml"
SPEC = REPO / "tests" / "fixtures" / "generate" / "tiny_spec.yaml"


def _latin1_yaml(path: Path, source: Path) -> Path:
    """A config that is valid YAML except that a comment was saved as latin-1."""
    text = source.read_text(encoding="utf-8")
    return _garbage(path, b"# r\xe9sum\xe9 of the run\n" + text.encode("utf-8"))


TRAIN_CASES: dict[str, Case] = {}
for command in ("train", "run", "results"):
    TRAIN_CASES[f"{command}-missing"] = lambda i, t, u, c=command: (
        [c, str(t / "nope.yaml")],
        t / "nope.yaml",
        MISSING,
        [],
    )
    TRAIN_CASES[f"{command}-corrupt"] = lambda i, t, u, c=command: (
        [c, str(_latin1_yaml(t / "conf.yaml", TINY))],
        t / "conf.yaml",
        CORRUPT,
        [],
    )
    TRAIN_CASES[f"{command}-folder"] = lambda i, t, u, c=command: (
        [c, str(t)],
        t,
        r"folder|directory|not a (file|config)",
        [],
    )
TRAIN_CASES["results-unwritable"] = lambda i, t, u: (
    ["results", str(TINY), "--output-dir", str(u)],
    u,
    UNWRITABLE,
    [],
)
TRAIN_CASES["generate-missing"] = lambda i, t, u: (
    [
        "generate",
        "--spec",
        str(t / "nope.yaml"),
        "--model",
        "openai/none",
        "--out",
        str(t / "c"),
        "--cache-only",
        "--cache-dir",
        str(t / "cache"),
    ],
    t / "nope.yaml",
    MISSING + r"|unknown spec",
    [t / "c"],
)
TRAIN_CASES["generate-corrupt"] = lambda i, t, u: (
    [
        "generate",
        "--spec",
        str(_latin1_yaml(t / "spec.yaml", SPEC)),
        "--model",
        "openai/none",
        "--out",
        str(t / "c"),
        "--cache-only",
        "--cache-dir",
        str(t / "cache"),
    ],
    t / "spec.yaml",
    CORRUPT,
    [t / "c"],
)
TRAIN_CASES["generate-unwritable"] = lambda i, t, u: (
    [
        "generate",
        "--spec",
        str(SPEC),
        "--model",
        "openai/none",
        "--out",
        str(u),
        "--n",
        "1",
        "--cache-only",
        "--cache-dir",
        str(t / "cache"),
    ],
    u,
    UNWRITABLE,
    [],
)


@pytest.mark.parametrize("case", list(TRAIN_CASES), ids=[f"caml-train-{c}" for c in TRAIN_CASES])
def test_caml_train_cli_fault(case: str, tmp_path: Path, unwritable: Path, capsys, monkeypatch):
    from caml_train.cli import main

    monkeypatch.chdir(tmp_path)  # relative outputs of a config land in the scratch folder
    argv, names, problem, leftovers = TRAIN_CASES[case](None, tmp_path, unwritable)
    outcome = run_main(main, argv, capsys)
    assert_user_error(outcome, names, problem, leftovers=leftovers)


def test_case_count() -> None:
    """The docstring's arithmetic, kept honest."""
    assert len(EVALS_CASES) == 27 and len(TRAIN_CASES) == 13
