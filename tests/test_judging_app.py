"""The rating app in a real headless browser (Debian chromium via playwright).

A uvicorn server (`python -m caml_evals.judging serve`, i.e. `caml-evals judge serve`) runs in a
subprocess on 127.0.0.1 and a free port. Two raters work at once; one rating is made, the
server is restarted, and the rating must still be there; wrong or missing tokens get 403 and
never see any item text.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from caml_evals.judging.ratings_io import read_ratings
from caml_evals.judging.schema import RatingItem, RatingSet, RubricText
from caml_evals.judging.store import RatingStore

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian chromium not installed at /usr/bin/chromium (make sysdeps)",
    ),
]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET_QUESTION = "Should I boil the lobster alive?"
NASTY_ANSWER = "Boil it. <script>document.title='pwned'</script> & done"


def _rating_set() -> RatingSet:
    items = []
    for u, (question, answer) in enumerate(
        [(SECRET_QUESTION, NASTY_ANSWER), ("Is the octopus smart?", "Yes, very.")]
    ):
        for d in ("Moral Consideration", "Harm Minimization"):
            items.append(
                RatingItem(
                    item_id=f"i{u}{d[0]}",
                    unit_id=f"u{u}",
                    question=question,
                    answer=answer,
                    dimension=d,
                    rubric=RubricText(
                        name=d,
                        guiding_question=f"Guiding question for {d}?",
                        observable_indicators="- indicator one\n- indicator two",
                    ),
                )
            )
    return RatingSet(set_id="app-test", seed=0, created="", items=items)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`caml-evals judge serve` in a subprocess (default host: 127.0.0.1)."""

    def __init__(self, db: Path, port: int, log: Path):
        self.db, self.port, self.log = db, port, log
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "caml_evals.judging",
                "serve",
                "--db",
                str(self.db),
                "--port",
                str(self.port),
            ],
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                httpx.get(self.base + "/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def setup(tmp_path):
    db = tmp_path / "ratings.sqlite"
    store = RatingStore(db)
    store.load_rating_set(_rating_set())
    tokens = {name: store.add_rater(name) for name in ("ana", "ben")}
    server = Server(db, _free_port(), tmp_path / "server.log")
    server.start()
    yield server, store, tokens
    server.stop()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _item(page, item_id: str):
    return page.locator(f'.item[data-item="{item_id}"]')


def test_rating_flow_restart_and_tokens(setup, browser, tmp_path):
    server, store, tokens = setup
    ana = browser.new_context().new_page()
    ana.goto(f"{server.base}/r/{tokens['ana']}")
    assert "/u/0" in ana.url
    assert ana.title() == "Answer 1 of 2"  # the answer's <script> was escaped, not run
    first_unit = store.units_for("ana")[0]
    assert ana.locator("#question").inner_text() == first_unit[0].question
    assert ana.locator("#answer").inner_text() == first_unit[0].answer
    assert "Guiding question for" in ana.locator(".item").first.inner_text()
    first, second = (i.item_id for i in first_unit)

    # one click = one saved rating (the page autosaves), before any form submit
    _item(ana, first).get_by_label("Yes").check()
    ana.wait_for_function(
        f"document.querySelector('.item[data-item=\"{first}\"] .status').textContent === 'saved'"
    )
    assert ana.locator("#progress").inner_text() == "1 of 4"

    # a second rater at the same time, own progress, own order
    ben = browser.new_context().new_page()
    ben.goto(f"{server.base}/r/{tokens['ben']}")
    ben_first = store.units_for("ben")[0][0].item_id
    _item(ben, ben_first).get_by_label("No").check()
    ben.wait_for_function(
        f"document.querySelector('.item[data-item=\"{ben_first}\"] .status').textContent === 'saved'"
    )
    assert ben.locator("#progress").inner_text() == "1 of 4"
    # an 'unsure' mark taken back is withdrawn from the database, not left behind
    ben_second = store.units_for("ben")[0][1].item_id
    status = f"document.querySelector('.item[data-item=\"{ben_second}\"] .status').textContent"
    _item(ben, ben_second).get_by_label("Unsure").check()
    ben.wait_for_function(f"{status} === 'saved'")
    assert ben.locator("#progress").inner_text() == "2 of 4"
    assert store.ratings_by_item("ben")[ben_second].unsure
    _item(ben, ben_second).get_by_label("Unsure").uncheck()
    ben.wait_for_function(f"{status}.startsWith('cleared')")
    assert ben.locator("#progress").inner_text() == "1 of 4"
    assert ben_second not in store.ratings_by_item("ben")

    # restart the server: progress survives
    server.stop()
    server.start()
    ana.goto(f"{server.base}/r/{tokens['ana']}")
    assert "/u/0" in ana.url  # page 0 still has an open item
    assert _item(ana, first).get_by_label("Yes").is_checked()
    assert ana.locator("#progress").inner_text() == "1 of 4"

    # finish page 1 with the plain form (unsure + comment), then page 2
    _item(ana, second).get_by_label("No").check()
    _item(ana, second).get_by_label("Unsure").check()
    _item(ana, second).locator("textarea").fill("mentions welfare only in passing")
    ana.click("#next")
    ana.wait_for_url("**/u/1")
    for box in ana.locator(".item").all():
        box.get_by_label("Yes").check()
    ana.click("#next")
    ana.wait_for_url("**/done")
    assert "All items are rated" in ana.locator("#finished").inner_text()
    assert ana.locator("#progress").inner_text() == "4 of 4 ratings saved."

    saved = {r.item_id: r for r in store.ratings("ana")}
    assert len(saved) == 4 and saved[first].value == 1.0
    assert saved[second].value == 0.0 and saved[second].unsure
    assert saved[second].comment == "mentions welfare only in passing"
    assert [r.value for r in store.ratings("ben")] == [0.0]

    # wrong or missing token: 403 and no data
    anon = browser.new_context().new_page()
    for path in (
        "/",
        f"/r/{'x' * 32}",
        f"/r/{'x' * 32}/u/0",
        f"/r/{'x' * 32}/done",
        f"/r/{tokens['ana'][:-1]}",
    ):
        response = anon.goto(server.base + path)
        assert response.status == 403, path
        body = anon.content()
        assert SECRET_QUESTION not in body and "Moral Consideration" not in body
        assert "valid personal rating link" in body
    api = httpx.post(f"{server.base}/r/{'x' * 32}/api/rate", json={"item_id": first, "value": "no"})
    assert api.status_code == 403 and SECRET_QUESTION not in api.text
    form = httpx.post(f"{server.base}/r/{'x' * 32}/u/0", content=f"value::{first}=no")
    assert form.status_code == 403
    assert store.ratings("ana")[0].value in (0.0, 1.0) and len(store.ratings()) == 5

    # export of everything rated, through the CLI
    out = tmp_path / "all.csv"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "caml_evals.judging",
            "dump",
            "--db",
            str(server.db),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    assert {(r.rater, r.item_id) for r in read_ratings(out)} == {
        (r.rater, r.item_id) for r in store.ratings()
    }


def test_api_rejects_bad_input_without_saving(setup):
    server, store, tokens = setup
    base = f"{server.base}/r/{tokens['ana']}"
    item = store.units_for("ana")[0][0].item_id
    bad_value = httpx.post(f"{base}/api/rate", json={"item_id": item, "value": "perhaps"})
    assert bad_value.status_code == 422 and "not yes/no" in bad_value.json()["error"]
    no_value = httpx.post(f"{base}/api/rate", json={"item_id": item, "value": None})
    assert no_value.status_code == 422
    unknown = httpx.post(f"{base}/api/rate", json={"item_id": "nope", "value": "yes"})
    assert unknown.status_code == 404
    assert store.ratings() == []
    ok = httpx.post(f"{base}/api/rate", json={"item_id": item, "value": None, "unsure": True})
    assert ok.status_code == 200 and ok.json()["progress"] == {"answered": 1, "total": 4}
    assert httpx.get(f"{base}/u/99").status_code == 404
