"""Fault injection, other inputs: ratings files (CSV and JSONL, 18 cases), the generation cache
(9) and caml-train configs (9), each x the loader faults = 36 cases (`<input>-<fault>`).

Layers: ratings files through `caml-evals judge import` in-process (exit code 2, one line naming
the file, nothing imported); cache entries through the real cache-first runner (a bad entry is
set aside as `<key>.corrupt`, listed in `cache.corrupt`, and its request sent again); configs
through `caml_train.config.load_config` (a `ConfigError` naming the file, in one line).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from faultlib import assert_user_error, call, run_main

REPO = Path(__file__).resolve().parents[2]
HUGE = 200_000
LATIN1 = " Café crème"

# --- ratings files -------------------------------------------------------------------------------

ITEMS = ("i001", "i002")


def _rating_set(path: Path) -> Path:
    from caml_evals.judging.schema import RatingItem, RatingSet, RubricText

    items = [
        RatingItem(
            item_id=i,
            unit_id="u1",
            question="Q?",
            answer="A.",
            dimension="d",
            criterion=f"d {i}",
            rubric=RubricText(name="d", guiding_question="G?"),
        )
        for i in ITEMS
    ]
    path.write_text(RatingSet(set_id="s", seed=0, created="", items=items).model_dump_json())
    return path


CSV_OK = "item_id,rater,value,comment\ni001,ana,yes,fine\n"
JSONL_OK = '{"item_id": "i001", "rater": "ana", "value": "yes", "comment": "fine"}\n'

# fault -> (csv bytes, jsonl bytes, outcome, problem regex); outcome "error" or "ok" (imported)
RATINGS_FAULTS: dict[str, tuple[bytes, bytes, str, str]] = {
    "empty": (b"", b"", "error", r"no ratings|header lacks"),
    "whitespace": (b" \n\n\t\n", b" \n\n\t\n", "error", r"no ratings|header lacks"),
    "broken-line": (
        CSV_OK.encode() + b'i002,ana,no,"never closed\n',
        JSONL_OK.encode() + b'{"item_id": "i002", "rater": "ana", "value": \n',
        "error",
        r"line \d: (a quoted field is never closed|invalid JSON)",
    ),
    "latin1": (
        CSV_OK.replace("fine", "fine" + LATIN1).encode("latin-1"),
        JSONL_OK.replace("fine", "fine" + LATIN1).encode("latin-1"),
        "error",
        r"line \d is not UTF-8",
    ),
    "bom": (b"\xef\xbb\xbf" + CSV_OK.encode(), b"\xef\xbb\xbf" + JSONL_OK.encode(), "ok", ""),
    "missing-column": (
        b"item_id,value\ni001,yes\n",
        b'{"item_id": "i001", "value": "yes"}\n',
        "error",
        r"lacks column|rater: Field required",
    ),
    "duplicate-id": (
        (CSV_OK + "i001,ana,no,changed my mind\n").encode(),
        (JSONL_OK + '{"item_id": "i001", "rater": "ana", "value": "no"}\n').encode(),
        "error",
        r"line \d: rater 'ana' already rated item 'i001' on line \d",
    ),
    "nan": (
        b"item_id,rater,value\ni001,ana,nan\n",
        b'{"item_id": "i001", "rater": "ana", "value": Infinity}\n',
        "error",
        r"line \d: value: rating .* is outside \[0, 1\]",
    ),
    "huge": (
        CSV_OK.replace("fine", "x" * HUGE).encode(),
        JSONL_OK.replace("fine", "x" * HUGE).encode(),
        "error",
        r"line \d: (a field is longer than|comment has \d+ characters)",
    ),
}

RATINGS_CASES = [
    pytest.param(fmt, fault, id=f"ratings-{fmt}-{fault}")
    for fault in RATINGS_FAULTS
    for fmt in ("csv", "jsonl")
]


@pytest.mark.parametrize(("fmt", "fault"), RATINGS_CASES)
def test_ratings_file_fault(fmt: str, fault: str, tmp_path: Path, capsys) -> None:
    from caml_evals.cli import main
    from caml_evals.judging.store import RatingStore

    csv_bytes, jsonl_bytes, outcome, problem = RATINGS_FAULTS[fault]
    path = tmp_path / f"ratings.{fmt}"
    path.write_bytes(csv_bytes if fmt == "csv" else jsonl_bytes)
    db = tmp_path / "db.sqlite"
    summary = tmp_path / "import.json"
    argv = [
        "judge",
        "import",
        str(path),
        "--db",
        str(db),
        "--rating-set",
        str(_rating_set(tmp_path / "set.json")),
        "--json",
        str(summary),
    ]
    got = run_main(main, argv, capsys)
    if outcome == "ok":
        assert got.code == 0, got.err
        assert [r.item_id for r in RatingStore(db).ratings()] == ["i001"]
        return
    assert_user_error(got, path, problem)
    assert RatingStore(db).ratings() == []  # nothing imported
    if summary.exists():  # written once the files could be read; an unreadable file has none
        assert json.loads(summary.read_text())["imported"] == 0


# --- the generation cache ------------------------------------------------------------------------


def _entry_json(key: str, **change) -> dict:
    from caml_train.generate.cache import CacheEntry

    entry = CacheEntry(
        key=key,
        model="openai/m",
        messages=[{"role": "user", "content": "doc"}],
        params={"temperature": 1.0},
        text="cached text",
    )
    return {**json.loads(entry.model_dump_json()), **change}


def _cache_fault(fault: str, key: str) -> bytes:
    ok = json.dumps(_entry_json(key))
    return {
        "empty": b"",
        "whitespace": b" \n\t\n",
        "broken-line": ok[: len(ok) // 2].encode(),  # a truncated entry
        "latin1": json.dumps(_entry_json(key, text="cached" + LATIN1), ensure_ascii=False).encode(
            "latin-1"
        ),
        "bom": b"\xef\xbb\xbf" + ok.encode(),
        "missing-column": json.dumps(
            {k: v for k, v in _entry_json(key).items() if k != "text"}
        ).encode(),
        "duplicate-id": json.dumps(_entry_json("ff" + key[2:])).encode(),  # another key's entry
        "nan": json.dumps(_entry_json(key, cost_usd=float("nan"))).encode(),
        "huge": json.dumps(_entry_json(key, text="x" * HUGE)).encode(),
    }[fault]


class _OneReplyClient:
    """Stands in for `LLMClient` in the runner (no litellm import): answers every request with
    `text` and counts the calls; the runner writes the cache entry as for a real reply."""

    model = "openai/m"

    def __init__(self, text: str) -> None:
        self.text, self.calls, self.retries, self.retry_reasons = text, 0, 0, {}

    async def complete(self, messages, params):
        from caml_train.generate.cache import Usage
        from caml_train.generate.client import Completion

        self.calls += 1
        return Completion(
            text=self.text,
            finish_reason="stop",
            usage=Usage(prompt_tokens=2, completion_tokens=3),
            cost_usd=0.0,
            cost_known=False,
            attempts=1,
            response_model="m",
        )


CACHE_FAULTS = [
    "empty",
    "whitespace",
    "broken-line",
    "latin1",
    "bom",
    "missing-column",
    "duplicate-id",
    "nan",
    "huge",
]


@pytest.mark.parametrize("fault", CACHE_FAULTS, ids=[f"cache-{f}" for f in CACHE_FAULTS])
async def test_generation_cache_fault(fault: str, tmp_path: Path) -> None:
    """Documented outcome (docs/generation.md): any entry that is not exactly a cache entry for
    its key is moved aside (kept), listed, and regenerated; a valid huge one is served."""
    from caml_train.generate.cache import ResponseCache, request_key
    from caml_train.generate.grid import TemplateParams
    from caml_train.generate.runner import Job, execute

    params = {"temperature": 1.0}
    messages = [{"role": "user", "content": "doc"}]
    key = request_key("openai/m", messages, params)
    cell = TemplateParams(institution="i", domain="d", doc_type="t", reasoning="r")
    job = Job(id="j", params=cell, messages=messages, key=key)
    cache = ResponseCache(tmp_path)
    bad = _cache_fault(fault, key)
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_bytes(bad)
    client = _OneReplyClient("regenerated")
    result = await execute([job], client=client, cache=cache, request_params=params, concurrency=1)
    if fault == "huge":
        assert client.calls == 0 and cache.corrupt == []
        assert cache.get(key).text == "x" * HUGE and result.cached_keys == {key}
        return
    assert cache.corrupt == [key], f"{fault}: not listed as corrupt"
    assert cache.path(key).with_suffix(".corrupt").read_bytes() == bad  # kept, never deleted
    assert client.calls == 1 and cache.get(key).text == "regenerated"


# --- caml-train configs --------------------------------------------------------------------------


def _config_fault(fault: str, text: str) -> bytes:
    return {
        "empty": b"",
        "whitespace": b"  \n\n\t\n",
        "broken-line": (text + "\narms: [unclosed\n").encode(),
        "latin1": ("# r" + "ésumé" + "\n" + text).encode("latin-1"),
        "bom": b"\xef\xbb\xbf" + text.encode(),
        "missing-column": "\n".join(
            line for line in text.splitlines() if not line.startswith("name:")
        ).encode(),
        "duplicate-id": (text + "\nname: again\n").encode(),  # `name:` is set above
        "nan": text.replace("learning_rate: 1.0e-3", "learning_rate: .nan").encode(),
        "huge": text.replace("name: tiny", "name: " + "x" * HUGE).encode(),
    }[fault]


CONFIG_FAULTS: dict[str, tuple[str, str]] = {
    "empty": ("error", r"empty|mapping"),
    "whitespace": ("error", r"empty|mapping|yaml"),  # a tab cannot start a YAML token
    "broken-line": ("error", r"yaml"),
    "latin1": ("error", r"utf-?8|encod|decod"),
    "bom": ("ok", ""),
    "missing-column": ("error", r"name.*(required|missing)|(required|missing).*name"),
    "duplicate-id": ("error", r"duplicate|twice|name"),
    "nan": ("error", r"learning_rate"),  # rejected, naming the field (any reason)
    "huge": ("ok-or-error", r"name|long|large"),
}


@pytest.mark.parametrize("fault", list(CONFIG_FAULTS), ids=[f"config-{f}" for f in CONFIG_FAULTS])
def test_caml_train_config_fault(fault: str, tmp_path: Path) -> None:
    from caml_train.config import ExperimentConfig, load_config

    shutil.copytree(REPO / "examples" / "tiny", tmp_path / "tiny")
    text = (REPO / "examples" / "tiny.yaml").read_text(encoding="utf-8")
    path = tmp_path / "experiment.yaml"
    path.write_text(text, encoding="utf-8")
    clean = call(lambda: load_config(path, ExperimentConfig))
    assert clean.code == 0, clean.err
    path.write_bytes(_config_fault(fault, text))
    got = call(lambda: load_config(path, ExperimentConfig))
    outcome, problem = CONFIG_FAULTS[fault]
    if outcome == "ok" or (outcome == "ok-or-error" and got.code == 0):
        assert got.code == 0, f"{fault}: expected the config to load: {got.err}"
        assert got.value.arms.keys() == clean.value.arms.keys()
        return
    assert_user_error(got, path, problem)


def test_case_count() -> None:
    assert len(RATINGS_CASES) + len(CACHE_FAULTS) + len(CONFIG_FAULTS) == 36
