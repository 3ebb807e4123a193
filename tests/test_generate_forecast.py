"""`--dry-run` forecast: tokens measured on the rendered prompts, prices from litellm's bundled map
(batch prices where listed; unknown is unknown, never $0), wall time from the binding limit; and the
generate CLI's one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from caml_train.generate.cli import main
from caml_train.generate.client import _price_map
from caml_train.generate.forecast import (
    CHARS_PER_TOKEN,
    estimate_prompt_tokens,
    forecast,
    lookup_price,
    wall_time,
)

FIXTURES = Path(__file__).parent / "fixtures" / "generate"
TINY = str(FIXTURES / "tiny_spec.yaml")


def test_prices_come_from_the_bundled_map_and_batch_is_its_own_column() -> None:
    entry = _price_map()["gpt-4o-mini"]
    online, batch = lookup_price("openai/gpt-4o-mini"), lookup_price("openai/gpt-4o-mini", "batch")
    assert online is not None and batch is not None
    assert online.input_per_token == entry["input_cost_per_token"]
    assert batch.output_per_token == entry["output_cost_per_token_batches"]
    assert batch.output_per_token < online.output_per_token
    assert lookup_price("openai/no-such-model-xyz") is None


def test_unknown_price_is_reported_never_zero() -> None:
    msgs = [[{"role": "user", "content": "x" * 400}]] * 3
    f = forecast(
        msgs,
        model="openai/no-such-model-xyz",
        planned=3,
        cached=0,
        completion_tokens_per_request=100,
        concurrency=4,
    )
    assert f.cost["online"].usd is None and f.cost["batch"].usd is None
    text = "\n".join(f.lines())
    assert "price online: unknown" in text and "$0" not in text


def test_forecast_arithmetic() -> None:
    msgs = [[{"role": "system", "content": "s" * 40}, {"role": "user", "content": "u" * 360}]] * 10
    per = estimate_prompt_tokens(msgs[0])
    assert per == 400 / CHARS_PER_TOKEN + 2 * 4 + 3
    f = forecast(
        msgs,
        model="gpt-4o-mini",
        planned=12,
        cached=2,
        completion_tokens_per_request=1000,
        concurrency=5,
        latency_s=2.0,
    )
    price = lookup_price("gpt-4o-mini")
    assert f.requests_to_send == 10 and f.prompt_tokens == 10 * per
    assert f.completion_tokens == 10_000
    assert f.cost["online"].usd == pytest.approx(
        10 * per * price.input_per_token + 10_000 * price.output_per_token
    )
    assert f.cost["batch"].usd == pytest.approx(f.cost["online"].usd / 2, rel=0.01)
    assert f.wall_time_online.seconds == pytest.approx(10 * 2.0 / 5)
    assert f.wall_time_online.bound_by == "concurrency"


def test_wall_time_takes_the_binding_limit() -> None:
    w = wall_time(6000, 1000, concurrency=100, latency_s=1.0, rpm=600, tpm=10_000_000)
    assert w.bound_by == "rpm" and w.seconds == pytest.approx(600)  # 6000 requests at 600/min
    w = wall_time(6000, 1000, concurrency=100, latency_s=1.0, rpm=60_000, tpm=1_000_000)
    assert w.bound_by == "tpm" and w.seconds == pytest.approx(360)  # 6M tokens at 1M/min
    auto = wall_time(10, 100, concurrency=None, latency_s=1.0)
    assert auto.seconds is None and "--rpm" in auto.basis


def test_dry_run_prints_the_forecast_and_calls_nothing(tmp_path: Path, capsys) -> None:
    code = main(
        [
            "generate",
            "--spec",
            TINY,
            "--model",
            "openai/gpt-4o-mini",
            "--out",
            str(tmp_path / "o"),
            "--cache-dir",
            str(tmp_path / "c"),
            "--n",
            "6",
            "--dry-run",
            "--rpm",
            "100",
            "--api-base",
            "http://127.0.0.1:9/v1",  # nothing listens there: a call would fail
        ]
    )
    err = capsys.readouterr().err
    assert code == 0
    assert "6 to send" in err and "price online: $" in err and "price batch: $" in err
    assert "wall time online:" in err and not (tmp_path / "o").exists()


def _one_error_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_missing_corrupt_and_bad_option_are_one_line(tmp_path: Path, capsys) -> None:
    base = [
        "--model",
        "openai/x",
        "--out",
        str(tmp_path / "o"),
        "--cache-only",
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert main(["generate", "--spec", str(tmp_path / "nope.yaml"), *base]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("caml-train generate: ") and "not found" in line
    bad = tmp_path / "spec.yaml"
    bad.write_bytes(b"# r\xe9sum\xe9\n" + Path(TINY).read_bytes())
    assert main(["generate", "--spec", str(bad), *base]) == 2
    assert "not UTF-8" in _one_error_line(capsys.readouterr().err)
    assert main(["generate", "--spec", TINY, "--concurrency", "0", *base]) == 2
    assert "concurrency" in _one_error_line(capsys.readouterr().err)
    many = FIXTURES / "bad_spec_many_errors.yaml"
    assert main(["generate", "--spec", str(many), *base]) == 2
    assert "invalid" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()
