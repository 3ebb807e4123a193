"""Each provider's batch wire format and failure handling against the local batch server, and
`caml-train generate --mode batch` end to end for Anthropic and Gemini: what each API receives
(system prompt, sampling parameters), a batch cancelled at the provider, transient faults of the
control calls, a rejected key, the batch price in the manifest, and a real `kill -9`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_generate_batch import MODELS, PROVIDERS, _finish_all, _jobs, _runner, reply
from test_generate_scale_cli import _args, _manifest, _reply

from caml_evals.errors import ConfigError
from caml_train.generate.batch import BatchRunner, make_adapter
from caml_train.generate.batch_server import BatchAPIServer
from caml_train.generate.cache import ResponseCache
from caml_train.generate.cli import main
from caml_train.generate.client import RetryPolicy
from caml_train.generate.forecast import lookup_price

STATE = Path("out") / "batches"


def _inputs(tmp: Path) -> list[dict]:
    return [json.loads(x) for x in (tmp / STATE / "b00000.input.jsonl").read_text().splitlines()]


def _one_batch(tmp: Path, provider: str):
    """Three requests through one batch: the jobs, their params, the result, and the bodies as
    the server understood them (OpenAI-shaped, whatever the provider's format)."""
    jobs, params = _jobs(tmp, 3, provider)
    with BatchAPIServer(reply, auto_finish=True) as server:
        result = _runner(server, tmp, provider).run(
            jobs, cache=ResponseCache(tmp / "cache"), request_params=params
        )
        bodies = dict(server.jobs[server.order[0]].items)
    assert not result.failures
    return jobs, params, result, bodies


def test_anthropic_requests_carry_system_and_params(tmp_path: Path) -> None:
    jobs, params, _result, bodies = _one_batch(tmp_path, "anthropic")
    system, user = jobs[0].messages
    line = next(x for x in _inputs(tmp_path) if x["custom_id"] == jobs[0].key)
    assert line["params"]["system"] == system["content"]
    assert line["params"]["messages"] == [user]
    assert line["params"]["max_tokens"] == params["max_tokens"]
    assert line["params"]["model"] == "claude-haiku-4-5"
    assert bodies[jobs[0].key]["messages"] == jobs[0].messages  # as the server understood it


def test_gemini_rows_are_generate_content_requests(tmp_path: Path) -> None:
    jobs, _params, result, bodies = _one_batch(tmp_path, "gemini")
    system, user = jobs[0].messages
    row = next(x for x in _inputs(tmp_path) if x["key"] == jobs[0].key)["request"]
    assert row["systemInstruction"] == {"parts": [{"text": system["content"]}]}
    assert row["contents"] == [{"role": "user", "parts": [{"text": user["content"]}]}]
    assert row["generationConfig"] == {"temperature": 1.0, "maxOutputTokens": 4096}
    assert bodies[jobs[0].key]["messages"] == jobs[0].messages
    entry = result.entries[jobs[0].key]
    assert entry.finish_reason == "stop" and entry.usage.completion_tokens == len(
        entry.text.split()
    )


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cancelled_batch_resubmits_only_its_requests(tmp_path: Path, provider) -> None:
    """A batch cancelled at the provider (the console, a colleague): its requests go into a new
    batch, once; the other batch's are never sent again."""
    jobs, params = _jobs(tmp_path, 8, provider)
    with BatchAPIServer(reply) as server:
        runner = _runner(server, tmp_path, provider, chunk_size=4)
        cancelled: list[str] = []

        def sleep(_s: float) -> None:
            if not cancelled:  # through the provider's own cancel endpoint
                cancelled.append(server.order[0])
                assert runner.adapter.cancel(server.order[0]).ended
            for b in server.in_flight():
                server.finish(b)

        runner._sleep = sleep
        result = runner.run(jobs, cache=ResponseCache(tmp_path / "cache"), request_params=params)
        first = {cid for cid, _ in server.jobs[cancelled[0]].items}
    assert not result.failures and len(result.entries) == 8
    assert all(server.submissions[j.key] == (2 if j.key in first else 1) for j in jobs)
    assert runner.state.batches[0].status in ("cancelled", "ended")
    assert runner.state.batches[0].missing == 4 and len(server.order) == 3


FAULT_STATUS = {"openai": 503, "anthropic": 529, "gemini": 503}
FAULT_PATHS = {
    "openai": ("/v1/batches", "/content"),
    "anthropic": ("/v1/messages/batches", "/results"),
    "gemini": (":batchGenerateContent", ":download"),
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_transient_faults_are_retried_without_double_submission(tmp_path: Path, provider) -> None:
    jobs, params = _jobs(tmp_path, 4, provider)
    create, download = FAULT_PATHS[provider]
    with BatchAPIServer(reply) as server:
        server.fail_next(2, FAULT_STATUS[provider], create)  # create (refused before it is made)
        server.fail_next(1, 429, download)
        result = _runner(server, tmp_path, provider, sleep=_finish_all(server)).run(
            jobs, cache=ResponseCache(tmp_path / "cache"), request_params=params
        )
        assert not server._faults  # every fault was hit
    assert not result.failures and len(result.entries) == 4
    assert len(server.order) == 1 and max(server.submissions.values()) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_rejected_key_is_one_user_error(tmp_path: Path, provider) -> None:
    jobs, params = _jobs(tmp_path, 2, provider)
    with BatchAPIServer(reply) as server:
        server.fail_next(1, 401)
        with pytest.raises(ConfigError, match="api-key"):
            _runner(server, tmp_path, provider).run(
                jobs, cache=ResponseCache(tmp_path / "cache"), request_params=params
            )
        assert not server.order


def test_a_refused_create_is_a_failure_and_the_rerun_submits_it(tmp_path: Path) -> None:
    """Retries exhausted on create: the requests fail in this run (never silently dropped); the
    rerun looks for the batch at the provider, finds none, and submits them once."""
    jobs, params = _jobs(tmp_path, 3, "anthropic")
    with BatchAPIServer(reply, auto_finish=True) as server:
        server.fail_next(4, 500, "/v1/messages/batches")  # max_attempts=4 in _runner
        cache = ResponseCache(tmp_path / "cache")
        first = _runner(server, tmp_path, "anthropic").run(jobs, cache=cache, request_params=params)
        assert len(first.failures) == 3 and all("not submitted" in f.error for f in first.failures)
        again = _runner(server, tmp_path, "anthropic").run(jobs, cache=cache, request_params=params)
    assert not again.failures and len(again.entries) == 3
    assert len(server.order) == 1 and max(server.submissions.values()) == 1


def test_unsupported_provider_and_missing_key_are_rejected(monkeypatch) -> None:
    with pytest.raises(ValueError, match="anthropic/<model>"):
        make_adapter("vertex_ai/gemini-2.5-flash")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        make_adapter("anthropic/claude-haiku-4-5")
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    adapter = make_adapter("gemini/gemini-2.5-flash", retry=RetryPolicy())
    assert adapter.key == "k"


# ------------------------------------------------------------------------------ end to end (CLI)


def _argv(tmp: Path, provider: str, base: str) -> list[str]:
    batch = ("--mode", "batch", "--batch-poll", "0.05")
    return _args(tmp, base, *batch, model=MODELS[provider])


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_cli_batch_mode_pays_the_batch_price(tmp_path: Path, provider) -> None:
    with BatchAPIServer(_reply, auto_finish=True) as server:
        assert main(_argv(tmp_path, provider, server.url)) == 0
        assert len(server.order) == 1 and max(server.submissions.values()) == 1
    m = _manifest(tmp_path)
    assert m["complete"] and m["mode"] == "batch" and m["counts"]["generated"] == 8
    paid = m["usage_by_mode"]["this_run"]["batch"]
    batch, online = lookup_price(MODELS[provider], "batch"), lookup_price(MODELS[provider])
    expected = (
        paid["prompt_tokens"] * batch.input_per_token
        + paid["completion_tokens"] * batch.output_per_token
    )
    at_online = (
        paid["prompt_tokens"] * online.input_per_token
        + paid["completion_tokens"] * online.output_per_token
    )
    assert paid["requests"] == 8 and paid["cost_unknown_requests"] == 0
    assert paid["cost_usd"] == pytest.approx(expected) and expected < 0.6 * at_online
    assert m["batches"]["provider"] == provider and m["batches"]["submitted_now"] == 8
    # a rerun (any mode) takes everything from the cache and submits nothing
    with BatchAPIServer(_reply, auto_finish=True) as again:
        assert main(_argv(tmp_path, provider, again.url)) == 0
        assert not again.order
    assert _manifest(tmp_path)["usage_by_mode"]["total"]["batch"]["requests"] == 8


def test_cli_batch_mode_refuses_vertex_and_a_missing_key(tmp_path: Path, capsys, monkeypatch):
    argv = _argv(tmp_path, "anthropic", "http://127.0.0.1:9")
    argv[argv.index("--model") + 1] = "vertex_ai/gemini-2.5-flash"
    assert main(argv) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "gemini/<model>" in err[0]
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    argv = _argv(tmp_path, "anthropic", "http://127.0.0.1:9")
    i = argv.index("--api-key")
    del argv[i : i + 2]
    assert main(argv) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "ANTHROPIC_API_KEY" in err[0]
    assert not (tmp_path / "out" / "batches").exists()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cli_killed_with_sigkill_resumes_exactly_once(tmp_path: Path, provider) -> None:
    """A real `kill -9` of `generate --mode batch` while its batch runs; the rerun re-attaches,
    collects, and the corpus holds every document exactly once, each request sent once."""
    with BatchAPIServer(_reply) as server:
        argv = _argv(tmp_path, provider, server.api_base if provider == "openai" else server.url)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "caml_train.generate.cli", *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        state = tmp_path / "out" / "batches" / "documents" / "state.json"
        try:
            deadline = time.monotonic() + 120
            while not (
                server.in_flight()
                and state.is_file()
                and json.loads(state.read_text())["batches"][0].get("batch_id")
            ):
                assert proc.poll() is None, "generate exited before submitting"
                assert time.monotonic() < deadline, "no batch recorded in time"
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        for b in server.in_flight():
            server.finish(b)
        assert main(argv) == 0
        assert len(server.order) == 1 and max(server.submissions.values()) == 1
    rows = [json.loads(x) for x in (tmp_path / "out" / "documents.jsonl").read_text().splitlines()]
    m = _manifest(tmp_path)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == m["counts"]["written"]
    assert m["counts"]["written"] + m["counts"]["dropped_total"] == 8 and m["complete"]
    assert m["batches"]["submitted_now"] == 0 and m["batches"]["reattached"] == 0


def test_batch_runner_default_chunk_is_the_provider_limit(tmp_path: Path) -> None:
    limits = {}
    for provider in PROVIDERS:
        runner = BatchRunner(
            model=MODELS[provider], api_key="x", state_dir=tmp_path / provider, chunk_size=10**9
        )
        limits[provider] = (runner.chunk_size, runner.adapter.max_bytes)
    assert limits["openai"][0] == 50_000 and limits["anthropic"][0] == 100_000
    assert limits["anthropic"][1] <= 256 * 10**6 and limits["openai"][1] <= 200 * 2**20
    assert limits["gemini"][1] < 2 * 2**30
