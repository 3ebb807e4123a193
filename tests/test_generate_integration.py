"""End to end through a REAL OpenAI-compatible HTTP server on 127.0.0.1, reached through litellm:
retries on injected 429/5xx, failures reported then filled in by a rerun, filters and manifest
counts, shards merged via their caches, a killed-and-resumed run, the Q/A control and cost accounting.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import datasets
import pytest

from caml_train.generate.cli import main, register
from caml_train.generate.filters import normalize_text
from caml_train.generate.grid import Shard
from caml_train.generate.pipeline import RunConfig, plan_documents
from caml_train.generate.spec import load_spec
from caml_train.generate.testing import Reply, ScriptedOpenAIServer, filler_text, user_text

FIXTURES = Path(__file__).parent / "fixtures" / "generate"
TINY = str(FIXTURES / "tiny_spec.yaml")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(autouse=True)
def no_external_network(monkeypatch):
    """Fail the test if anything (litellm included) tries to reach a host other than loopback."""
    attempts: list[str] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and str(host) not in LOCAL_HOSTS:
            attempts.append(str(host))
            raise OSError(f"network disabled in tests: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if isinstance(address, tuple) and str(address[0]) not in LOCAL_HOSTS:
            attempts.append(str(address[0]))
            raise OSError(f"network disabled in tests: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    yield attempts
    assert not attempts, f"external network attempted: {attempts}"


def doc_reply(body: dict) -> str:
    return filler_text(user_text(body), 300)


def args(
    server: ScriptedOpenAIServer,
    tmp: Path,
    *extra: str,
    model: str = "openai/scripted",
    cmd: str = "generate",
    spec: str = TINY,
) -> list[str]:
    return [
        cmd,
        "--spec",
        spec,
        "--model",
        model,
        "--api-base",
        server.api_base,
        "--api-key",
        "x",
        "--out",
        str(tmp / "out"),
        "--cache-dir",
        str(tmp / "cache"),
        "--retry-base-delay",
        "0.01",
        *extra,
    ]


def manifest(tmp: Path, kind: str = "documents", suffix: str = "") -> dict:
    return json.loads((tmp / "out" / f"{kind}{suffix}.manifest.json").read_text())


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def hits_by_prompt(server: ScriptedOpenAIServer, start: int = 0) -> Counter:
    return Counter(user_text(b) for b in server.hits[start:])


def test_retries_on_429_and_500_succeed_over_http(tmp_path: Path) -> None:
    seen: Counter = Counter()
    lock = threading.Lock()

    def responder(body: dict, n: int):
        with lock:
            seen[user_text(body)] += 1
            k = seen[user_text(body)]
        if k == 1:
            return Reply(status=429, error_message="rate limited", headers={"retry-after": "0"})
        if k == 2:
            return Reply(status=500, error_message="upstream exploded")
        return doc_reply(body)

    with ScriptedOpenAIServer(responder) as server:
        assert main(args(server, tmp_path, "--n", "6", "--concurrency", "3")) == 0
        per_prompt = hits_by_prompt(server)
    assert len(per_prompt) == 6 and set(per_prompt.values()) == {
        3
    }  # one 429, one 500, one success each
    m = manifest(tmp_path)
    assert m["retries"] == 12 and m["retry_reasons"] == {"429": 6, "500": 6}
    assert m["counts"]["written"] == 6 and m["complete"] and m["failures"] == []
    assert (
        m["usage"]["this_run"]["requests"] == 6
        and m["usage"]["this_run"]["cost_unknown_requests"] == 6
    )
    assert m["model"] == "openai/scripted" and m["seed"] == 0 and m["spec"] == "tiny"
    corpus = tmp_path / "out" / "documents.jsonl"
    ds = datasets.load_dataset("json", data_files=str(corpus), split="train")
    assert ds.num_rows == 6 and set(ds.column_names) >= {
        "id",
        "text",
        "spec",
        "params",
        "model",
        "prompt_hash",
    }
    spec = load_spec(TINY)
    for row in ds:
        assert row["params"]["institution"] in spec.grid.institutions
        assert row["params"]["reasoning"] in spec.grid.reasoning
        assert row["id"] == f"tiny-{row['prompt_hash'][:16]}"
        assert row["text"] and row["model"] == "openai/scripted"


def test_failed_requests_are_reported_then_filled_by_a_rerun(tmp_path: Path) -> None:
    cfg_jobs = plan_documents(_cfg(tmp_path, n=5))
    prompts = [j.messages[1]["content"] for j in cfg_jobs]
    broken = {"bad_request": prompts[0], "always_500": prompts[1]}
    mode = {"healthy": False}

    def responder(body: dict, n: int):
        text = user_text(body)
        if not mode["healthy"] and text == broken["bad_request"]:
            return Reply(status=400, error_message="invalid request")
        if not mode["healthy"] and text == broken["always_500"]:
            return Reply(status=500)
        return doc_reply(body)

    with ScriptedOpenAIServer(responder) as server:
        assert main(args(server, tmp_path, "--n", "5", "--max-attempts", "3")) == 1
        first = hits_by_prompt(server)
        m = manifest(tmp_path)
        assert first[broken["bad_request"]] == 1  # a 400 is not retried
        assert first[broken["always_500"]] == 3  # a 500 is retried up to --max-attempts
        assert m["counts"]["failed"] == 2 and m["counts"]["written"] == 3 and not m["complete"]
        by_attempts = sorted((f["attempts"], f["error"]) for f in m["failures"])
        assert by_attempts[0][0] == 1 and "BadRequestError" in by_attempts[0][1]
        assert by_attempts[1][0] == 3 and "retries exhausted" in by_attempts[1][1]
        mode["healthy"] = True
        start = server.hit_count()
        assert main(args(server, tmp_path, "--n", "5")) == 0
        again = hits_by_prompt(server, start)
    assert set(again) == set(broken.values()) and sum(again.values()) == 2  # only the failed ones
    m = manifest(tmp_path)
    assert m["complete"] and m["counts"]["from_cache"] == 3 and m["counts"]["written"] == 5


def _cfg(tmp: Path, n: int, shard: Shard | None = None) -> RunConfig:
    return RunConfig(
        spec=load_spec(TINY),
        spec_ref=TINY,
        model="openai/scripted",
        out_dir=tmp / "out",
        cache_dir=tmp / "cache",
        n=n,
        shard=shard or Shard(),
    )


def _kind(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 7


def test_filters_dedup_and_manifest_counts(tmp_path: Path) -> None:
    """Each prompt gets a reply of one kind (by hash); the expected counts come from the plan."""
    template = filler_text("shared near-duplicate", 300)

    def responder(body: dict, n: int):
        text = user_text(body)
        good = filler_text(text, 300)
        kind = _kind(text)
        return {
            0: good,
            1: good + "\n\nIn the end, you should care about animals.",
            2: "Too short to be a document.",
            3: "I'm sorry, but I can't help with that request.",
            4: Reply(content=good, finish_reason="length"),
            5: template + f" Filed by desk {hashlib.md5(text.encode()).hexdigest()[:6]}.",
            6: "Here is the internal memo you asked for:\n\n" + good,
        }[kind]

    jobs = plan_documents(_cfg(tmp_path, n=24))
    kinds = Counter(_kind(j.messages[1]["content"]) for j in jobs)
    assert all(kinds[k] for k in (0, 1, 5)) and kinds[5] >= 2, kinds  # the grid exercises the cases

    with ScriptedOpenAIServer(responder) as server:
        assert main(args(server, tmp_path, "--n", "24", "--concurrency", "6")) == 0
    m = manifest(tmp_path)
    expected_dropped = {
        "preaching": kinds[1],
        "too_short": kinds[2],
        "refusal": kinds[3],
        "truncated": kinds[4],
        "near_duplicate": kinds[5] - 1,
    }
    assert m["dropped"] == {k: v for k, v in sorted(expected_dropped.items()) if v}
    written = kinds[0] + kinds[6] + 1
    c = m["counts"]
    assert c["written"] == written and c["dropped_total"] == 24 - written
    assert c["planned"] == c["written"] + c["dropped_total"] + c["failed"] + c["missing_from_cache"]
    corpus = rows(tmp_path / "out" / "documents.jsonl")
    rejected = rows(tmp_path / "out" / "rejected" / "documents.jsonl")
    assert len(corpus) == written and Counter(r["reason"] for r in rejected) == Counter(
        m["dropped"]
    )
    assert not any(r["text"].startswith("Here is") for r in corpus)  # preamble stripped, doc kept
    dup_rows = [r for r in rejected if r["reason"] == "near_duplicate"]
    kept_ids = {r["id"] for r in corpus}
    assert all(r["duplicate_of"] in kept_ids for r in dup_rows)
    assert {r["id"] for r in corpus} | {r["id"] for r in rejected} == {
        j.id for j in jobs
    }  # nothing lost


def test_shards_split_the_run_and_merge_through_the_cache(tmp_path: Path) -> None:
    with ScriptedOpenAIServer(lambda b, n: doc_reply(b)) as server:
        shard_ids = []
        for i in range(3):
            machine = tmp_path / f"machine{i}"
            assert main(args(server, machine, "--n", "10", "--shard", f"{i}/3")) == 0
            suffix = f".shard-{i:03d}-of-003"
            shard_ids.append({r["id"] for r in rows(machine / "out" / f"documents{suffix}.jsonl")})
            assert manifest(machine, suffix=suffix)["shard"] == {"index": i, "count": 3}
        assert server.hit_count() == 10
        assert sum(map(len, shard_ids)) == 10 and len(set().union(*shard_ids)) == 10  # a partition
        merged = tmp_path / "merged"
        for i in range(3):
            shutil.copytree(
                tmp_path / f"machine{i}" / "cache", merged / "cache", dirs_exist_ok=True
            )
        assert main(args(server, merged, "--n", "10", "--cache-only")) == 0
        assert server.hit_count() == 10  # the merge made no request
        full = rows(merged / "out" / "documents.jsonl")
        assert {r["id"] for r in full} == set().union(*shard_ids)
        assert [r["id"] for r in full] == [
            j.id for j in plan_documents(_cfg(merged, n=10))
        ]  # sample order
        m = manifest(merged)
        assert m["counts"]["from_cache"] == 10 and m["usage"]["this_run"]["requests"] == 0
        assert m["usage"]["from_cache"]["requests"] == 10
        # a response missing from the merged cache is reported, not silently skipped
        next(iter((merged / "cache").glob("*/*.json"))).unlink()
        assert main(args(server, merged, "--n", "10", "--cache-only")) == 1
        m = manifest(merged)
        assert m["counts"]["missing_from_cache"] == 1 and len(m["missing_from_cache"]) == 1
        assert not m["complete"] and m["counts"]["written"] == 9


def test_killed_run_resumes_without_repeating_cached_requests(tmp_path: Path) -> None:
    release = threading.Event()
    state = {"hang_after": 4}

    def responder(body: dict, n: int):
        if n > state["hang_after"]:
            release.wait(60)  # the first run is killed while these hang
        return doc_reply(body)

    with ScriptedOpenAIServer(responder) as server:
        cmd = [
            sys.executable,
            "-m",
            "caml_train.generate.cli",
            *args(server, tmp_path, "--n", "10", "--concurrency", "2"),
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = (tmp_path / "first-run.log").open("wb")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        cache_dir = tmp_path / "cache"
        deadline = time.monotonic() + 120
        while len(list(cache_dir.glob("*/*.json"))) < 4 or server.hit_count() < 6:
            assert proc.poll() is None, (tmp_path / "first-run.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "first run made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()
        cached_prompts = {
            json.loads(p.read_text())["messages"][1]["content"] for p in cache_dir.glob("*/*.json")
        }
        assert len(cached_prompts) == 4 and not (tmp_path / "out" / "documents.jsonl").exists()
        state["hang_after"] = 10**9
        release.set()
        start = server.hit_count()
        assert main(args(server, tmp_path, "--n", "10", "--concurrency", "2")) == 0
        second = hits_by_prompt(server, start)
    assert not set(second) & cached_prompts  # no repeated request for a cached document
    assert sum(second.values()) == 6 and set(second.values()) == {1}
    corpus = rows(tmp_path / "out" / "documents.jsonl")
    planned = [j.id for j in plan_documents(_cfg(tmp_path, n=10))]
    assert [r["id"] for r in corpus] == planned  # every document exactly once, in order
    m = manifest(tmp_path)
    assert m["counts"]["from_cache"] == 4 and m["counts"]["generated"] == 6 and m["complete"]


def _qa_reply(body: dict) -> str | Reply:
    text = user_text(body)
    kind = _kind(text) % 4
    pairs = [
        {
            "question": f"How should the team plan step {i}? ({text[-12:]})",
            "answer": filler_text(text + str(i), 40),
        }
        for i in range(3)
    ]
    if kind == 0:
        return json.dumps({"pairs": pairs})
    if kind == 1:
        return "```json\n" + json.dumps(pairs) + "\n```"
    if kind == 2:
        return "\n\n".join(f"Q: {p['question']}\nA: {p['answer']}" for p in pairs[:2]) + (
            "\n\nQ: And then?\nA: " + filler_text(text, 40) + " We must all care about animals."
        )
    return "I would rather not answer in that format."


def test_instruction_control_from_grid_and_from_documents(tmp_path: Path) -> None:
    with ScriptedOpenAIServer(
        lambda b, n: _qa_reply(b) if "Reply with JSON only" in user_text(b) else doc_reply(b)
    ) as server:
        assert main(args(server, tmp_path, "--n", "12", cmd="generate-instructions")) == 0
        m = manifest(tmp_path, "instructions")
        jobs_kinds = Counter(_kind(b["messages"][1]["content"]) % 4 for b in server.hits)
        assert m["counts"]["unparseable_replies"] == jobs_kinds[3]
        assert m["counts"]["pairs_parsed"] == 3 * (12 - jobs_kinds[3])
        assert m["dropped"].get("preaching", 0) == jobs_kinds[2]
        assert m["dropped"].get("unparseable", 0) == jobs_kinds[3]
        assert m["counts"]["written"] == 3 * (jobs_kinds[0] + jobs_kinds[1]) + 2 * jobs_kinds[2]
        qa = datasets.load_dataset(
            "json", data_files=str(tmp_path / "out" / "instructions.jsonl"), split="train"
        )
        assert qa.num_rows == m["counts"]["written"]
        first = qa[0]
        assert [msg["role"] for msg in first["messages"]] == ["user", "assistant"]
        assert first["params"]["domain"] and first["source_id"] is None

        # from documents: one Q/A request per document, carrying its params and id
        assert main(args(server, tmp_path, "--n", "6")) == 0
        docs_path = tmp_path / "out" / "documents.jsonl"
        docs = {r["id"]: r for r in rows(docs_path)}
        with docs_path.open("a") as fh:
            fh.write('{"id": "broken", "text": 5}\n')
        start = server.hit_count()
        assert (
            main(args(server, tmp_path, "--documents", str(docs_path), cmd="generate-instructions"))
            == 0
        )
        bodies = server.hits[start:]
        assert len(bodies) == 6 and all("<document>" in user_text(b) for b in bodies)
        m = manifest(tmp_path, "instructions")
        assert m["source"] == "documents" and m["counts"]["malformed_input_lines"] == 1
        assert m["malformed_input"][0]["line"] == 7
        requested = [user_text(b) for b in bodies]
        for doc in docs.values():  # each document was sent once, inside its Q/A prompt
            assert sum(doc["text"] in r for r in requested) == 1
        qa_rows = rows(tmp_path / "out" / "instructions.jsonl")
        assert qa_rows and {r["source_id"] for r in qa_rows} <= set(docs)
        for row in qa_rows:
            assert row["params"] == docs[row["source_id"]]["params"]


def test_spec_mismatch_and_bad_spec_exit_2(tmp_path: Path, capsys) -> None:
    docs = tmp_path / "docs.jsonl"
    row = {
        "id": "x",
        "text": "t",
        "spec": "other",
        "params": {"institution": "i", "domain": "d", "doc_type": "t", "reasoning": "r"},
        "model": "m",
        "prompt_hash": "h",
    }
    docs.write_text(json.dumps(row) + "\n")
    base = [
        "--model",
        "openai/x",
        "--api-base",
        "http://127.0.0.1:9/v1",
        "--out",
        str(tmp_path),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert main(["generate-instructions", "--spec", TINY, "--documents", str(docs), *base]) == 2
    assert "not 'tiny'" in capsys.readouterr().err
    assert main(["generate", "--spec", str(FIXTURES / "bad_spec_many_errors.yaml"), *base]) == 2
    assert "grid.domains" in capsys.readouterr().err
    assert main(["generate", "--spec", TINY, "--shard", "3/3", *base]) == 2  # one line, no usage
    assert "0-based" in capsys.readouterr().err


def test_cli_registers_into_caml_train_and_dry_run_calls_nothing(tmp_path: Path, capsys) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="caml-train")
    register(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(
        [
            "generate",
            "--spec",
            "animal_welfare",
            "--model",
            "openai/m",
            "--out",
            "o",
            "--shard",
            "2/8",
        ]
    )
    assert ns.shard == Shard(index=2, count=8) and callable(ns.func)
    ns = parser.parse_args(
        ["generate-instructions", "--spec", "urban_density", "--model", "openai/m", "--out", "o"]
    )
    assert ns.func.__name__ == "run_generate_instructions" and ns.documents is None
    with ScriptedOpenAIServer(lambda b, n: doc_reply(b)) as server:
        assert main(args(server, tmp_path, "--n", "3", "--dry-run")) == 0
        assert server.hit_count() == 0
    err = capsys.readouterr().err
    assert "3 requests planned, 0 already cached" in err and "[user]" in err


def test_cost_is_accounted_for_a_priced_model(tmp_path: Path) -> None:
    with ScriptedOpenAIServer(lambda b, n: doc_reply(b)) as server:
        assert main(args(server, tmp_path, "--n", "2", model="openai/gpt-4o-mini")) == 0
    m = manifest(tmp_path)
    usage = m["usage"]["this_run"]
    assert usage["requests"] == 2 and usage["cost_unknown_requests"] == 0
    assert usage["cost_usd"] > 0 and usage["completion_tokens"] > 0
    assert m["usage"]["total"]["cost_usd"] == pytest.approx(usage["cost_usd"])


def test_importing_litellm_makes_no_network_call() -> None:
    code = (
        "import socket\n"
        "def deny(*a, **k):\n    raise SystemExit('network attempted: %r' % (a[:1],))\n"
        "socket.getaddrinfo = deny\n"
        "socket.socket.connect = deny\n"
        "from caml_train.generate.client import import_litellm\n"
        "litellm = import_litellm()\n"
        "assert litellm.model_cost.get('gpt-4o-mini'), 'bundled cost map missing'\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM_")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


@pytest.mark.slow
def test_generation_served_by_the_embedded_model(tmp_path: Path, embedded_checkpoint: Path) -> None:
    """The same path against a real model: SmolLM2 behind the OpenAI-compatible server."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(embedded_checkpoint)
    model.eval()

    def generate(messages: list[dict], max_new_tokens: int) -> str:
        ids = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)

    def responder(body: dict, n: int) -> Reply:
        return Reply(
            content=generate(body["messages"], int(body.get("max_tokens", 16))),
            finish_reason="length",
        )

    short = str(FIXTURES / "tiny_short_prompts.yaml")  # a short prompt keeps CPU generation quick
    with ScriptedOpenAIServer(responder, model_name="smollm2") as server:
        cli = args(
            server, tmp_path, "--n", "1", "--max-tokens", "12", model="openai/smollm2", spec=short
        )
        assert main(cli) == 0
        body = server.hits[0]
    assert body["max_tokens"] == 12 and body["messages"][1]["content"].startswith("Write a")
    m = manifest(tmp_path)
    assert m["counts"]["replies"] == 1 and m["dropped"] == {
        "truncated": 1
    }  # 12 tokens: cut, so dropped
    assert m["usage"]["this_run"]["completion_tokens"] > 0
    rejected = rows(tmp_path / "out" / "rejected" / "documents.jsonl")[0]
    assert rejected["text"] and rejected["text"] == normalize_text(generate(body["messages"], 12))


def test_python_api_used_by_experiments(tmp_path: Path) -> None:
    from caml_train.generate.api import GenerationIncomplete, generate_corpus

    broken = {"on": True}

    def responder(body: dict, n: int):
        return Reply(status=500) if broken["on"] and n == 1 else doc_reply(body)

    with ScriptedOpenAIServer(responder) as server:
        opts = {
            "model": "openai/scripted",
            "api_base": server.api_base,
            "api_key": "x",
            "n": 3,
            "cache_dir": tmp_path / "cache",
            "max_attempts": 1,
        }
        with pytest.raises(GenerationIncomplete, match="1 request"):
            generate_corpus(spec=TINY, out_dir=tmp_path / "c", **opts)
        broken["on"] = False
        path = generate_corpus(spec=TINY, out_dir=tmp_path / "c", **opts)
        assert path == tmp_path / "c" / "documents.jsonl" and len(rows(path)) == 3
        assert server.hit_count() == 4  # 3 + the one retried by the second call
        qa = generate_corpus(
            spec=TINY, out_dir=tmp_path / "c", kind="instructions", documents=path, **opts
        )
        assert qa.name == "instructions.jsonl"
    with pytest.raises(ValueError, match="unknown generation option"):
        generate_corpus(spec=TINY, out_dir=tmp_path, model="openai/x", temprature=0.5)
    with pytest.raises(ValueError, match="needs `model`"):
        generate_corpus(spec=TINY, out_dir=tmp_path)


# ------------------------------------------------------------------------- transports and start-up


def _run_cfg(server: ScriptedOpenAIServer, tmp: Path, **kw) -> RunConfig:
    cfg = _cfg(tmp, n=kw.pop("n", 3))
    return cfg.model_copy(update={"api_base": server.api_base, "api_key": "x", **kw})


def test_litellm_and_http_transports_give_the_same_corpus_usage_and_price(tmp_path: Path) -> None:
    """The direct HTTP path is what litellm does for an OpenAI-compatible server, minus litellm."""
    from caml_train.generate.pipeline import generate_documents

    manifests = {}
    with ScriptedOpenAIServer(lambda b, n: doc_reply(b)) as server:
        for transport in ("http", "litellm"):
            cfg = _run_cfg(
                server,
                tmp_path / transport,
                model="openai/gpt-4o-mini",  # priced: litellm's completion_cost vs bundled_price
                transport=transport,
            )
            manifests[transport] = generate_documents(cfg)
    http, via_litellm = manifests["http"], manifests["litellm"]
    assert http.counts.written == via_litellm.counts.written == 3
    assert http.usage.this_run.prompt_tokens == via_litellm.usage.this_run.prompt_tokens > 0
    assert http.usage.this_run.completion_tokens == via_litellm.usage.this_run.completion_tokens
    assert http.usage.this_run.cost_unknown_requests == 0
    assert http.usage.this_run.cost_usd == pytest.approx(via_litellm.usage.this_run.cost_usd)
    texts = {
        t: sorted(r["text"] for r in rows(tmp_path / t / "out" / "documents.jsonl"))
        for t in manifests
    }
    assert texts["http"] == texts["litellm"]


async def test_http_transport_retries_dropped_and_slow_replies_and_names_http_errors(
    tmp_path: Path,
) -> None:
    from caml_train.generate.client import GenerationError, LLMClient, RetryPolicy

    hits: Counter = Counter()

    def responder(body: dict, n: int):
        text = user_text(body)
        hits[text] += 1
        if text == "slow" and hits[text] == 1:
            return Reply(content="late", delay=3.0)  # beyond the attempt timeout
        if text == "limited" and hits[text] == 1:
            return Reply(status=429, headers={"Retry-After": "7"})
        if text == "unknown":
            return Reply(status=404, error_message="no such model")
        return f"ok {text}"

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    with ScriptedOpenAIServer(responder) as server:
        client = LLMClient(
            "openai/scripted",
            api_base=server.api_base,
            api_key="x",
            retry=RetryPolicy(max_attempts=3, base_delay=0.01, timeout=1.0),
            sleep=sleep,
        )
        assert client.transport == "http"
        slow = await client.complete([{"role": "user", "content": "slow"}], {})
        limited = await client.complete([{"role": "user", "content": "limited"}], {})
        with pytest.raises(GenerationError, match=r"NotFoundError \(404\).*no such model") as err:
            await client.complete([{"role": "user", "content": "unknown"}], {})
        await client.aclose()
    assert slow.text == "ok slow" and slow.attempts == 2
    assert limited.text == "ok limited" and limited.attempts == 2 and 7.0 in waits
    assert err.value.attempts == 1 and not err.value.retryable
    assert client.retry_reasons == {"TimeoutError": 1, "429": 1}


def test_a_generation_run_imports_neither_litellm_nor_inspect(tmp_path: Path) -> None:
    """Start-up: importing litellm takes seconds, inspect_ai too; the HTTP path needs neither."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from caml_train.generate.pipeline import RunConfig, generate_documents\n"
        "from caml_train.generate.spec import load_spec\n"
        "cfg = RunConfig(spec=load_spec(sys.argv[1]), spec_ref='tiny', model='openai/scripted',\n"
        "    api_base=sys.argv[2], api_key='x', out_dir=Path(sys.argv[3]) / 'out',\n"
        "    cache_dir=Path(sys.argv[3]) / 'cache', n=2)\n"
        "assert generate_documents(cfg).counts.written == 2\n"
        "print(sorted(m for m in ('litellm', 'inspect_ai', 'openai') if m in sys.modules))\n"
    )
    with ScriptedOpenAIServer(lambda b, n: doc_reply(b)) as server:
        out = subprocess.run(
            [sys.executable, "-c", code, TINY, server.api_base, str(tmp_path)],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_bundled_price_reads_litellms_map_without_importing_it() -> None:
    from caml_train.generate.cache import Usage
    from caml_train.generate.client import bundled_price, import_litellm

    usage = Usage(prompt_tokens=1000, completion_tokens=500)
    cost, known = bundled_price("openai/gpt-4o-mini", usage)
    litellm = import_litellm()
    expected = sum(
        litellm.cost_per_token(model="gpt-4o-mini", prompt_tokens=1000, completion_tokens=500)
    )
    assert known and cost == pytest.approx(expected)
    assert bundled_price("openai/my-local-llama", usage) == (0.0, False)
