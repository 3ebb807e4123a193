"""The at-scale options through `caml-train generate` end to end, on loopback servers only:
`--mode batch` (local OpenAI Batch API), `--concurrency auto` (a rate-limited server), and what the
manifest records (requests and price per mode, the concurrency trace, batches, corpus stats)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from caml_train.generate.batch_server import BatchAPIServer
from caml_train.generate.cli import main
from caml_train.generate.testing import Reply, ScriptedOpenAIServer, filler_text, user_text

FIXTURES = Path(__file__).parent / "fixtures" / "generate"
TINY = str(FIXTURES / "tiny_spec.yaml")


def _reply(body: dict) -> str:
    return filler_text(user_text(body), 300)


def _args(tmp: Path, api_base: str, *extra: str, model: str = "openai/gpt-4o-mini") -> list[str]:
    return [
        "generate",
        "--spec",
        TINY,
        "--model",
        model,
        "--api-base",
        api_base,
        "--api-key",
        "x",
        "--out",
        str(tmp / "out"),
        "--cache-dir",
        str(tmp / "cache"),
        "--n",
        "8",
        "--retry-base-delay",
        "0.01",
        *extra,
    ]


def _manifest(tmp: Path) -> dict:
    return json.loads((tmp / "out" / "documents.manifest.json").read_text())


def test_batch_mode_then_online_rerun_shares_the_cache(tmp_path: Path, capsys) -> None:
    with BatchAPIServer(_reply, auto_finish=True) as server:
        assert (
            main(_args(tmp_path, server.api_base, "--mode", "batch", "--batch-poll", "0.01")) == 0
        )
        assert len(server.order) == 1 and max(server.submissions.values()) == 1
    m = _manifest(tmp_path)
    assert m["complete"] and m["mode"] == "batch" and m["counts"]["generated"] == 8
    assert m["usage_by_mode"]["this_run"]["batch"]["requests"] == 8
    assert m["usage_by_mode"]["this_run"]["batch"]["cost_usd"] > 0
    assert (
        m["batches"]["submitted_now"] == 8 and m["batches"]["batches"][0]["status"] == "completed"
    )
    assert m["corpus_stats"]["documents"] == m["counts"]["written"]
    # an online rerun at another endpoint: everything from the cache, nothing sent
    with ScriptedOpenAIServer(lambda b, n: _reply(b)) as online:
        assert main(_args(tmp_path, online.api_base)) == 0
        assert online.hit_count() == 0
    m = _manifest(tmp_path)
    assert m["counts"]["from_cache"] == 8 and m["usage_by_mode"]["total"]["batch"]["requests"] == 8
    assert m["usage_by_mode"]["this_run"] == {}


def test_concurrency_auto_backs_off_on_429_and_completes(tmp_path: Path) -> None:
    lock, stamps = threading.Lock(), []

    def responder(body: dict, n: int):
        now = time.monotonic()
        with lock:
            recent = [t for t in stamps if now - t < 0.2]
            stamps[:] = recent
            if len(recent) >= 10:  # at most 10 requests per 0.2 s: best ~5 in flight
                return Reply(status=429, headers={"retry-after": "0"})
            stamps.append(now)
        return Reply(content=_reply(body), delay=0.1)

    with ScriptedOpenAIServer(responder) as server:
        code = main(
            _args(
                tmp_path,
                server.api_base,
                "--concurrency",
                "auto",
                "--n",
                "24",
                "--retry-base-delay",
                "0.05",
                model="openai/scripted",
            )
        )
    assert code == 0
    m = _manifest(tmp_path)
    assert m["complete"] and m["counts"]["generated"] == 24
    trace = m["concurrency"]["trace"]
    assert trace[0]["event"] == "start" and m["concurrency"]["max_limit"] >= 2
    if m["retry_reasons"].get("429"):
        assert m["concurrency"]["decreases"] >= 1


def test_batch_mode_for_another_provider_is_one_line(tmp_path: Path, capsys) -> None:
    code = main(
        _args(
            tmp_path, "http://127.0.0.1:9/v1", "--mode", "batch", model="vertex_ai/gemini-2.5-flash"
        )
    )
    assert code == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "openai" in err[0]
