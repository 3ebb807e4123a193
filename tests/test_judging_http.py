"""The rating app at the HTTP level (in-process, no browser): token checks come first on every
path, bad input gets a clear 4xx and stores nothing, a withdrawn choice deletes the rating, and
the server binds 127.0.0.1 unless told otherwise. The real-browser flow is test_judging_app.py.
"""

from __future__ import annotations

import argparse
import html

import pytest
from fastapi.testclient import TestClient

from caml_evals.judging.app import create_app
from caml_evals.judging.cli import main as judge_main
from caml_evals.judging.cli import register
from caml_evals.judging.schema import RatingItem, RatingSet, RubricText
from caml_evals.judging.store import RatingStore

SECRET = "Should I boil the lobster alive?"
DIMS = ("Moral Consideration", "Harm Minimization")


def _rating_set() -> RatingSet:
    items = [
        RatingItem(
            item_id=f"i{u}{d[0]}",
            unit_id=f"u{u}",
            question=SECRET if u == 0 else "Is the octopus smart?",
            answer="Boil it." if u == 0 else "Yes, very.",
            dimension=d,
            rubric=RubricText(name=d, guiding_question=f"Guiding question for {d}?"),
        )
        for u in range(2)
        for d in DIMS
    ]
    return RatingSet(set_id="http-test", seed=0, created="", items=items)


@pytest.fixture
def app(tmp_path):
    db = tmp_path / "ratings.sqlite"
    store = RatingStore(db)
    store.load_rating_set(_rating_set())
    token = store.add_rater("ana")
    client = TestClient(create_app(db), follow_redirects=False)
    return client, store, token


def _no_data(response) -> None:
    assert SECRET not in response.text
    assert not any(d in response.text for d in DIMS)
    assert "octopus" not in response.text


BAD = "x" * 32


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/"),
        ("GET", "/r"),
        ("GET", "/r/"),
        ("GET", "/r//u/0"),
        ("GET", "/r//done"),
        ("GET", f"/r/{BAD}"),
        ("GET", f"/r/{BAD}/"),
        ("GET", f"/r/{BAD}/u/0"),
        ("GET", f"/r/{BAD}/u/abc"),  # was 422: the page number was validated before the token
        ("GET", f"/r/{BAD}/u/-1"),
        ("GET", f"/r/{BAD}/u/99"),
        ("GET", f"/r/{BAD}/done"),
        ("GET", f"/r/{BAD}/api/rate"),
        ("GET", f"/r/{BAD}/some/other/path"),
        ("POST", f"/r/{BAD}/u/abc"),
        ("POST", f"/r/{BAD}/u/0"),
        ("POST", f"/r/{BAD}/api/rate"),
        ("POST", f"/r/{BAD}/api/clear"),
        ("DELETE", f"/r/{BAD}/u/0"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/static/app.js"),
    ],
)
def test_wrong_or_missing_token_is_403_and_no_data(app, method, path):
    client, store, _ = app
    response = client.request(method, path, content=b"value::i0M=yes")
    assert response.status_code == 403, (method, path, response.status_code)
    assert "valid personal rating link" in response.text
    _no_data(response)
    assert store.ratings() == []


def test_an_almost_right_token_is_403(app):
    client, _, token = app
    for bad in (token[:-1], token + "x", token.upper() if token.upper() != token else BAD):
        response = client.get(f"/r/{bad}/u/0")
        assert response.status_code == 403
        _no_data(response)


def test_bad_pages_behind_a_valid_token_are_404(app):
    client, _, token = app
    assert client.get(f"/r/{token}/u/0").status_code == 200
    for path in ("/u/abc", "/u/99", "/u/-1", "/u/1.0", "/nope", "/api/rate"):
        assert client.get(f"/r/{token}{path}").status_code == 404, path
    assert client.post(f"/r/{token}/u/abc", content=b"").status_code == 404


def test_form_with_an_invalid_value_is_400_and_stores_it_not(app):
    client, store, token = app
    unit = store.units_for("ana")[0]
    first, second = unit[0], unit[1]
    body = f"value::{first.item_id}=maybe&value::{second.item_id}=yes"
    response = client.post(f"/r/{token}/u/0", content=body.encode())
    assert response.status_code == 400
    assert f"{first.dimension}: rating 'maybe' is not yes/no (allowed: yes, no)" in html.unescape(
        response.text
    )
    assert {r.item_id: r.value for r in store.ratings()} == {second.item_id: 1.0}
    for value in ("0.5", "1", "true"):  # HumanRating would parse these; the app asks yes/no
        r = client.post(f"/r/{token}/u/0", content=f"value::{first.item_id}={value}".encode())
        assert r.status_code == 400
    assert first.item_id not in store.ratings_by_item("ana")
    assert client.post(f"/r/{token}/u/0", content=b"value::\xff=yes").status_code == 400


@pytest.mark.parametrize("value", ["perhaps", "0.5", "1", "true", 0.5, 1])
def test_api_accepts_only_yes_or_no(app, value):
    client, store, token = app
    item = store.units_for("ana")[0][0].item_id
    response = client.post(f"/r/{token}/api/rate", json={"item_id": item, "value": value})
    assert response.status_code == 422
    assert response.json()["saved"] is False and response.json()["error"]
    assert store.ratings() == []
    ok = client.post(f"/r/{token}/api/rate", json={"item_id": item, "value": "no"})
    assert ok.status_code == 200 and store.ratings()[0].value == 0.0


def test_api_rejects_malformed_bodies(app):
    client, store, token = app
    item = store.units_for("ana")[0][0].item_id
    assert client.post(f"/r/{token}/api/rate", content=b"not json").status_code == 422
    assert client.post(f"/r/{token}/api/rate", json=["a"]).status_code == 422
    assert client.post(f"/r/{token}/api/rate", json={"value": "yes"}).status_code == 422
    assert client.post(f"/r/{token}/api/rate", json={"item_id": item}).status_code == 422
    assert client.post(f"/r/{token}/api/clear", json={}).status_code == 422
    assert client.post(f"/r/{token}/api/clear", json={"item_id": "nope"}).status_code == 404
    assert store.ratings() == []


def test_withdrawing_an_unsure_mark_deletes_the_rating(app):
    client, store, token = app
    unit = store.units_for("ana")[0]
    item = unit[0].item_id
    # the page's JavaScript: unsure ticked, then unticked
    r = client.post(f"/r/{token}/api/rate", json={"item_id": item, "value": None, "unsure": True})
    assert r.status_code == 200 and r.json()["progress"]["answered"] == 1
    assert store.ratings_by_item("ana")[item].unsure
    r = client.post(f"/r/{token}/api/clear", json={"item_id": item})
    assert r.status_code == 200 and r.json() == {
        "cleared": True,
        "progress": {"answered": 0, "total": 4},
    }
    assert store.ratings() == []
    assert client.post(f"/r/{token}/api/clear", json={"item_id": item}).json()["cleared"] is False
    # the plain form (no JavaScript): unsure submitted, then the page submitted without it
    r = client.post(f"/r/{token}/u/0", content=f"unsure::{item}=1".encode())
    assert r.status_code == 303 and store.ratings_by_item("ana")[item].value is None
    r = client.post(f"/r/{token}/u/0", content=f"comment::{item}=".encode())
    assert r.status_code == 303
    assert store.ratings() == []
    # a comment without a choice is an error, and the withdrawn mark stays withdrawn
    client.post(f"/r/{token}/u/0", content=f"unsure::{item}=1".encode())
    r = client.post(f"/r/{token}/u/0", content=f"comment::{item}=hmm".encode())
    assert r.status_code == 400 and "choose yes or no, or tick 'unsure'" in html.unescape(r.text)
    assert store.ratings() == []


def test_page_marks_saved_items_for_the_clear_script(app):
    client, store, token = app
    item = store.units_for("ana")[0][0].item_id
    client.post(f"/r/{token}/api/rate", json={"item_id": item, "value": None, "unsure": True})
    page = client.get(f"/r/{token}/u/0").text
    assert f'class="item saved" data-item="{item}"' in page
    assert 'post("clear", {item_id: id})' in page


def test_default_bind_host_is_localhost(tmp_path, monkeypatch, capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["judge", "serve", "--db", str(tmp_path / "db.sqlite")])
    assert args.host == "127.0.0.1"

    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    db = tmp_path / "db.sqlite"
    RatingStore(db).load_rating_set(_rating_set())
    assert judge_main(["serve", "--db", str(db), "--rater", "ana"]) == 0
    assert seen["host"] == "127.0.0.1"
    out = capsys.readouterr().out
    assert f"http://127.0.0.1:{seen['port']}/r/" in out and "warning" not in out


# --- size caps (issue 14, defect 5) --------------------------------------------------------------


def test_oversized_bodies_get_413_and_store_nothing(app):
    from caml_evals.judging.app import MAX_BODY_BYTES

    client, store, token = app
    huge = "x" * (MAX_BODY_BYTES + 1)
    item = store.units_for("ana")[0][0].item_id
    r = client.post(f"/r/{token}/api/rate", json={"item_id": item, "value": "yes", "comment": huge})
    assert r.status_code == 413
    r = client.post(
        f"/r/{token}/u/0",
        content=f"value::{item}=yes&comment::{item}={huge}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    # a streamed body without a Content-Length is counted as it arrives
    chunks = (b"x" * 65536 for _ in range(MAX_BODY_BYTES // 65536 + 2))
    r = client.post(f"/r/{token}/api/rate", content=chunks)
    assert r.status_code == 413
    # and a bad token still gets 403 first, whatever the size
    assert client.post(f"/r/{BAD}/api/rate", content=huge).status_code == 403
    assert store.ratings() == []


def test_comment_longer_than_the_cap_gets_422_and_stores_nothing(app):
    from caml_evals.judging.schema import MAX_COMMENT_CHARS

    client, store, token = app
    unit = store.units_for("ana")[0]
    long = "y" * (MAX_COMMENT_CHARS + 1)
    r = client.post(
        f"/r/{token}/api/rate", json={"item_id": unit[0].item_id, "value": "no", "comment": long}
    )
    assert r.status_code == 422 and str(MAX_COMMENT_CHARS) in r.json()["error"]
    form = "&".join(
        f"value::{i.item_id}=yes&comment::{i.item_id}={long if n else 'ok'}"
        for n, i in enumerate(unit)
    )
    r = client.post(
        f"/r/{token}/u/0",
        content=form,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 422 and str(MAX_COMMENT_CHARS) in r.text
    assert store.ratings() == []  # the page is stored whole or not at all
    # exactly at the cap is fine
    ok = "z" * MAX_COMMENT_CHARS
    r = client.post(
        f"/r/{token}/api/rate", json={"item_id": unit[0].item_id, "value": "no", "comment": ok}
    )
    assert r.status_code == 200 and store.ratings()[0].comment == ok


# --- tokens never reach the access log (issue 14, defect 6) --------------------------------------


def test_access_log_redacts_rater_tokens(tmp_path):
    """The real uvicorn server at --log-level info, with the log config `judge serve` uses."""
    import logging
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    from caml_evals.judging.app import redact_tokens, redacted_log_config

    assert redact_tokens('"GET /r/abc-DEF_1/u/0 HTTP/1.1"') == '"GET /r/<token>/u/0 HTTP/1.1"'
    db = tmp_path / "ratings.sqlite"
    store = RatingStore(db)
    store.load_rating_set(_rating_set())
    token = store.add_rater("ana")
    log_file = tmp_path / "access.log"
    config = redacted_log_config()
    for handler in config["handlers"].values():  # the same filters, into a file we can read
        handler.pop("stream", None)
        handler["class"] = "logging.FileHandler"
        handler["filename"] = str(log_file)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(db), host="127.0.0.1", port=port, log_level="info", log_config=config
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/r/{token}/u/0").status_code == 200
        assert httpx.get(f"{base}/r/{BAD}/u/0").status_code == 403
    finally:
        server.should_exit = True
        thread.join(10)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            for handler in logging.getLogger(name).handlers[:]:
                logging.getLogger(name).removeHandler(handler)
                handler.close()
    text = log_file.read_text()
    assert "/r/<token>/u/0" in text and " 200" in text and " 403" in text
    assert token not in text and BAD not in text
