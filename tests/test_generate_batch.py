"""`--mode batch` against the local batch API server on 127.0.0.1, for each provider (OpenAI Batch
API, Anthropic Message Batches, Gemini batch mode): chunking, partial failures, expiry, a run killed
mid-batch (and between create and save) re-attaching, and the guarantee that every document arrives
exactly once and no request with a result is ever submitted again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from caml_train.generate.batch import BatchRunner, make_adapter
from caml_train.generate.batch_server import BatchAPIServer
from caml_train.generate.cache import ResponseCache
from caml_train.generate.client import RetryPolicy
from caml_train.generate.pipeline import RunConfig, plan_documents
from caml_train.generate.spec import load_spec
from caml_train.generate.testing import filler_text, user_text

FIXTURES = Path(__file__).parent / "fixtures" / "generate"
MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}
PROVIDERS = list(MODELS)


class Killed(BaseException):
    """Stands in for kill -9 (nothing catches it): raised after everything before it was saved."""


def _jobs(tmp: Path, n: int = 20, provider: str = "openai", **kw):
    cfg = RunConfig(
        **kw,
        spec=load_spec(FIXTURES / "tiny_spec.yaml"),
        spec_ref="tiny",
        model=MODELS[provider],
        out_dir=tmp / "out",
        cache_dir=tmp / "cache",
        n=n,
    )
    return plan_documents(cfg), cfg.request_params()


def reply(body: dict) -> str:
    return filler_text(user_text(body), 200)


def _bad(cid: str, share: int) -> bool:
    return int(hashlib.sha256(cid.encode()).hexdigest(), 16) % share == 0


def _runner(server: BatchAPIServer, tmp: Path, provider: str, **kw) -> BatchRunner:
    model = MODELS[provider]
    base = server.api_base if provider == "openai" else server.url
    adapter = make_adapter(
        model, api_base=base, api_key="x", retry=RetryPolicy(max_attempts=4, base_delay=0.01)
    )
    return BatchRunner(
        model=model,
        adapter=adapter,
        state_dir=tmp / "out" / "batches",
        poll_interval=0.01,
        **kw,
    )


def _finish_all(server: BatchAPIServer):
    def sleep(_s: float) -> None:
        for b in server.in_flight():
            server.finish(b)

    return sleep


@pytest.mark.parametrize("provider", PROVIDERS)
def test_batches_chunk_and_resubmit_only_failed_and_expired(tmp_path: Path, provider) -> None:
    jobs, params = _jobs(tmp_path, 20, provider)
    keys = {j.key for j in jobs}

    def fate(cid: str, body: dict, batch_number: int) -> str:
        if batch_number <= 3:  # the first round's batches: some errors, one batch expires part-done
            if _bad(cid, 4):
                return "error"
            return "missing" if batch_number == 3 and _bad(cid, 2) else "ok"
        return "ok"

    with BatchAPIServer(reply, fate=fate) as server:

        def sleep(_s: float) -> None:
            for b in server.in_flight():
                server.finish(b, expire=server.order.index(b) == 2)

        cache = ResponseCache(tmp_path / "cache")
        result = _runner(server, tmp_path, provider, chunk_size=7, sleep=sleep).run(
            jobs, cache=cache, request_params=params
        )
        submissions = server.submissions
        third = {cid for cid, _ in server.jobs[server.order[2]].items}
    assert not result.failures and set(result.entries) == keys
    assert len(server.order) > 3  # 3 batches of <= 7 in round 1, then the resubmission
    # resubmitted: the error lines, and what the expired batch has no result for (Gemini writes
    # no responses file for an expired batch: all of it; the others: its missing part)
    expected = {k for k in keys if _bad(k, 4)}
    expected |= third if provider == "gemini" else {k for k in third if _bad(k, 2)}
    assert {k for k, n in submissions.items() if n == 2} == expected
    assert max(submissions.values()) == 2 and set(submissions) == keys
    state = json.loads((tmp_path / "out" / "batches" / "state.json").read_text())
    assert all(b["collected"] and b["batch_id"] for b in state["batches"])
    assert {b["provider"] for b in state["batches"]} == {provider}
    entry = cache.get(next(iter(keys)))
    assert entry.mode == "batch" and entry.cost_known and entry.cost_usd > 0
    assert entry.model == MODELS[provider] and entry.text == reply({"messages": entry.messages})
    assert result.usage_this_run.requests == 20


@pytest.mark.parametrize("provider", PROVIDERS)
def test_killed_mid_batch_reattaches_and_never_resubmits(tmp_path: Path, provider) -> None:
    jobs, params = _jobs(tmp_path, 12, provider)
    keys = {j.key for j in jobs}
    with BatchAPIServer(reply) as server:
        cache = ResponseCache(tmp_path / "cache")

        def die(_s: float) -> None:
            raise Killed

        with pytest.raises(Killed):  # submitted 2 batches, then "killed" while waiting
            _runner(server, tmp_path, provider, chunk_size=6, sleep=die).run(
                jobs, cache=cache, request_params=params
            )
        assert len(server.in_flight()) == 2 and not cache.keys()
        server.finish(server.order[0])  # one batch ends while no process is watching

        again = _runner(server, tmp_path, provider, sleep=_finish_all(server))
        result = again.run(jobs, cache=cache, request_params=params)
        assert set(result.entries) == keys and not result.failures
        assert again.submitted_now == 0 and len(server.order) == 2
        assert all(server.submissions[k] == 1 for k in keys)
        # a third run finds everything in the cache and submits nothing
        third = _runner(server, tmp_path, provider).run(jobs, cache=cache, request_params=params)
        assert third.cached_keys == keys and len(server.order) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_killed_between_create_and_save_finds_the_batch(tmp_path: Path, provider) -> None:
    jobs, params = _jobs(tmp_path, 5, provider)
    with BatchAPIServer(reply) as server:
        # Anthropic finds an unrecorded batch by creation time and size: a batch of the same size
        # that someone created before this run's attempt is not taken for it
        if provider == "anthropic":
            other_jobs, _ = _jobs(tmp_path / "o", 5, provider, temperature=0.3)
            assert not {j.key for j in other_jobs} & {j.key for j in jobs}
            other = _runner(server, tmp_path / "o", provider, sleep=_finish_all(server))
            other.run(other_jobs, cache=ResponseCache(tmp_path / "o-cache"), request_params=params)
        before = len(server.order)
        runner = _runner(server, tmp_path, provider)
        real_create = runner.adapter.create

        def create_then_die(record, data):
            real_create(record, data)
            raise Killed  # the batch exists at the provider; state.json has no batch id

        runner.adapter.create = create_then_die
        with pytest.raises(Killed):
            runner.run(jobs, cache=ResponseCache(tmp_path / "cache"), request_params=params)
        state = json.loads((tmp_path / "out" / "batches" / "state.json").read_text())
        assert state["batches"][0]["create_started_at"] and not state["batches"][0]["batch_id"]
        ours = server.order[-1]

        again = _runner(server, tmp_path, provider, sleep=_finish_all(server))
        result = again.run(jobs, cache=ResponseCache(tmp_path / "cache"), request_params=params)
        assert len(result.entries) == 5 and again.reattached == 1
        assert len(server.order) == before + 1 and again.state.batches[0].batch_id == ours
        assert max(server.submissions[j.key] for j in jobs) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rounds_exhausted_are_failures_a_rerun_retries(tmp_path: Path, provider) -> None:
    jobs, params = _jobs(tmp_path, 6, provider)
    broken = {j.key for j in jobs if _bad(j.key, 3)} or {jobs[0].key}
    with BatchAPIServer(
        reply, fate=lambda c, b, n: "error" if c in broken else "ok", auto_finish=True
    ) as server:
        cache = ResponseCache(tmp_path / "cache")
        result = _runner(server, tmp_path, provider, max_rounds=2).run(
            jobs, cache=cache, request_params=params
        )
        assert {f.prompt_hash for f in result.failures} == broken
        assert all("injected failure" in f.error for f in result.failures)
        assert all(server.submissions[k] == 2 for k in broken)
        assert all(server.submissions[j.key] == 1 for j in jobs if j.key not in broken)
