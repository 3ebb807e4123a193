"""`--mode batch` against a local OpenAI Batch API server on 127.0.0.1: chunking, partial failures,
expiry, a run killed mid-batch (and between create and save) re-attaching, and the guarantee that
every document arrives exactly once and no request with a result is ever submitted again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from caml_train.generate.batch import BatchRunner
from caml_train.generate.batch_server import BatchAPIServer
from caml_train.generate.cache import ResponseCache
from caml_train.generate.pipeline import RunConfig, plan_documents
from caml_train.generate.spec import load_spec
from caml_train.generate.testing import filler_text, user_text

FIXTURES = Path(__file__).parent / "fixtures" / "generate"
MODEL = "openai/gpt-4o-mini"


class Killed(Exception):
    """Stands in for kill -9: raised from the poll sleep, after everything before it was saved."""


def _jobs(tmp: Path, n: int = 20):
    cfg = RunConfig(
        spec=load_spec(FIXTURES / "tiny_spec.yaml"),
        spec_ref="tiny",
        model=MODEL,
        out_dir=tmp / "out",
        cache_dir=tmp / "cache",
        n=n,
    )
    return plan_documents(cfg), cfg.request_params()


def reply(body: dict) -> str:
    return filler_text(user_text(body), 200)


def _bad(cid: str, share: int) -> bool:
    return int(hashlib.sha256(cid.encode()).hexdigest(), 16) % share == 0


def _runner(server: BatchAPIServer, tmp: Path, **kw) -> BatchRunner:
    return BatchRunner(
        model=MODEL,
        api_base=server.api_base,
        api_key="x",
        state_dir=tmp / "out" / "batches",
        poll_interval=0.01,
        **kw,
    )


def test_batches_chunk_and_resubmit_only_failed_and_expired(tmp_path: Path) -> None:
    jobs, params = _jobs(tmp_path, 20)
    keys = {j.key for j in jobs}

    def fate(cid: str, body: dict, batch_number: int) -> str:
        if batch_number <= 3:  # the first round's batches: some errors, one batch expires part-done
            return (
                "error"
                if _bad(cid, 4)
                else "missing"
                if batch_number == 3 and _bad(cid, 2)
                else "ok"
            )
        return "ok"

    with BatchAPIServer(reply, fate=fate) as server:

        def sleep(_s: float) -> None:
            for b in server.in_flight():
                server.finish(b, expire=server.order.index(b) == 2)

        cache = ResponseCache(tmp_path / "cache")
        result = _runner(server, tmp_path, chunk_size=7, sleep=sleep).run(
            jobs, cache=cache, request_params=params
        )
        submissions = server.submissions
    assert not result.failures and set(result.entries) == keys
    assert len(server.order) > 3  # 3 batches of <= 7 in round 1, then the resubmission
    first_round_ok = {k for k in keys if not _bad(k, 4)}
    assert all(submissions[k] == 1 for k in first_round_ok - {k for k in keys if _bad(k, 2)})
    assert max(submissions.values()) == 2  # a failed request is resubmitted once, nothing more
    state = json.loads((tmp_path / "out" / "batches" / "state.json").read_text())
    assert all(b["collected"] and b["batch_id"] for b in state["batches"])
    assert {b["status"] for b in state["batches"]} == {"completed", "expired"}
    entry = cache.get(next(iter(keys)))
    assert entry.mode == "batch" and entry.cost_known and entry.cost_usd > 0
    assert result.usage_this_run.requests == 20


def test_killed_mid_batch_reattaches_and_never_resubmits(tmp_path: Path) -> None:
    jobs, params = _jobs(tmp_path, 12)
    keys = {j.key for j in jobs}
    with BatchAPIServer(reply) as server:
        cache = ResponseCache(tmp_path / "cache")

        def die(_s: float) -> None:
            raise Killed

        with pytest.raises(Killed):  # submitted 2 batches, then "killed" while waiting
            _runner(server, tmp_path, chunk_size=6, sleep=die).run(
                jobs, cache=cache, request_params=params
            )
        assert len(server.in_flight()) == 2 and not cache.keys()
        server.finish(server.order[0])  # one batch ends while no process is watching

        def finish_all(_s: float) -> None:
            for b in server.in_flight():
                server.finish(b)

        again = _runner(server, tmp_path, sleep=finish_all)
        result = again.run(jobs, cache=cache, request_params=params)
        assert set(result.entries) == keys and not result.failures
        assert again.submitted_now == 0 and len(server.order) == 2
        assert all(server.submissions[k] == 1 for k in keys)
        # a third run finds everything in the cache and submits nothing
        third = _runner(server, tmp_path).run(jobs, cache=cache, request_params=params)
        assert third.cached_keys == keys and len(server.order) == 2


def test_killed_between_create_and_save_finds_the_batch(tmp_path: Path) -> None:
    jobs, params = _jobs(tmp_path, 5)
    with BatchAPIServer(reply) as server:
        runner = _runner(server, tmp_path)
        real_create = runner.client.batches.create

        def create_then_die(**kw):
            real_create(**kw)
            raise Killed  # the batch exists at the provider; state.json has only the file id

        runner.client.batches.create = create_then_die
        with pytest.raises(Killed):
            runner.run(jobs, cache=ResponseCache(tmp_path / "cache"), request_params=params)
        state = json.loads((tmp_path / "out" / "batches" / "state.json").read_text())
        assert state["batches"][0]["file_id"] and not state["batches"][0]["batch_id"]

        def finish_all(_s: float) -> None:
            for b in server.in_flight():
                server.finish(b)

        again = _runner(server, tmp_path, sleep=finish_all)
        result = again.run(jobs, cache=ResponseCache(tmp_path / "cache"), request_params=params)
        assert len(result.entries) == 5 and again.reattached == 1 and len(server.order) == 1
        assert max(server.submissions.values()) == 1


def test_rounds_exhausted_are_failures_a_rerun_retries(tmp_path: Path) -> None:
    jobs, params = _jobs(tmp_path, 6)
    broken = {j.key for j in jobs if _bad(j.key, 3)} or {jobs[0].key}
    with BatchAPIServer(
        reply, fate=lambda c, b, n: "error" if c in broken else "ok", auto_finish=True
    ) as server:
        cache = ResponseCache(tmp_path / "cache")
        result = _runner(server, tmp_path, max_rounds=2).run(
            jobs, cache=cache, request_params=params
        )
        assert {f.prompt_hash for f in result.failures} == broken
        assert all("injected failure" in f.error for f in result.failures)
        assert all(server.submissions[k] == 2 for k in broken)
        assert all(server.submissions[j.key] == 1 for j in jobs if j.key not in broken)
    with pytest.raises(ValueError, match="openai"):
        BatchRunner(model="anthropic/claude-haiku-4-5", state_dir=tmp_path / "s")
