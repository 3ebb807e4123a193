"""The static leaderboard: built from real Inspect logs, then opened in headless chromium."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from caml_evals.stats.leaderboard import build_leaderboard, write_site

sys.path.insert(0, str(Path(__file__).parent))  # works under any pytest import mode
from test_probes_solvers import probed_logs  # scripted probed runs with known numbers
from test_stats_logs import run_choice, run_rubric  # the same real-log builders

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Three models x two tasks, with orders that differ between the tasks:
    stats_choice: base (A) 4/6 > other (B) 2/6 ... ; stats_rubric: tuned > base."""
    root = tmp_path_factory.mktemp("board")
    logs = root / "logs"
    run_rubric("base", logs / "base")
    run_rubric("tuned", logs / "tuned")
    run_choice("base", "A", logs / "base")
    run_choice("tuned", "B", logs / "tuned")
    run_choice("zeta", "C", logs / "zeta")  # always wrong: 0/6
    # a second run for one cell: the newest log must win, the other be listed
    run_choice("zeta", "C", logs / "zeta_again")
    board = build_leaderboard([logs], n_resamples=500)
    page = write_site(board, root / "site")
    return page


def test_leaderboard_contents_and_json(site):
    data = json.loads((site.parent / "leaderboard.json").read_text())
    assert data["models"] == ["scripted/base", "scripted/tuned", "scripted/zeta"]
    assert data["tasks"] == ["stats_choice", "stats_rubric"]
    cells = {(c["model"], c["task"]): c for c in data["cells"]}
    assert cells[("scripted/base", "stats_choice")]["overall"]["mean"] == pytest.approx(4 / 6)
    assert cells[("scripted/zeta", "stats_choice")]["overall"]["mean"] == 0.0
    zeta = cells[("scripted/zeta", "stats_choice")]
    assert len(zeta["other_logs"]) == 1 and "zeta_again" not in zeta["other_logs"][0]  # newest used
    rubric = cells[("scripted/base", "stats_rubric")]
    assert set(rubric["dimensions"]) == {"Care", "Honesty"} and rubric["overall"]["n_missing"] == 2
    for cell in data["cells"]:  # every link points at a copied log next to the page
        assert (site.parent / cell["log_href"]).is_file()
    # each cell names its judge (from the log's model roles); a choice task has none
    assert rubric["judge"].startswith("grader=scripted/judge")
    assert cells[("scripted/base", "stats_choice")]["judge"] == "-"
    assert "judge: grader=scripted/judge" in site.read_text()


def test_leaderboard_is_self_contained(site):
    html = site.read_text()
    assert "<svg" in html and "<script>" in html
    assert not re.search(r"""(src|href)=["']https?://""", html)  # nothing fetched from anywhere
    assert "<link" not in html and "@import" not in html


def test_link_mode_without_copies(site, tmp_path):
    board = build_leaderboard([site.parent / "logs"], n_resamples=200)
    page = write_site(board, tmp_path / "linked", copy_logs=False)
    data = json.loads((page.parent / "leaderboard.json").read_text())
    assert not (page.parent / "logs").exists()
    assert all((page.parent / c["log_href"]).resolve().is_file() for c in data["cells"])


@pytest.mark.browser
def test_sorting_and_charts_in_headless_chromium(site):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian chromium not installed at {CHROMIUM} (make sysdeps)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright not installed")

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        requests: list[str] = []
        errors: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(site.as_uri())

        def models() -> list[str]:
            return page.locator("#leaderboard tbody tr").evaluate_all(
                "rows => rows.map(r => r.getAttribute('data-model'))"
            )

        assert models() == ["scripted/base", "scripted/tuned", "scripted/zeta"]
        headers = page.locator("#leaderboard thead th")
        headers.nth(1).click()  # stats_choice, descending: base 4/6, tuned 2/6, zeta 0
        assert models() == ["scripted/base", "scripted/tuned", "scripted/zeta"]
        assert headers.nth(1).get_attribute("aria-sort") == "descending"
        headers.nth(1).click()  # ascending
        assert models() == ["scripted/zeta", "scripted/tuned", "scripted/base"]
        headers.nth(2).click()  # stats_rubric, descending: tuned > base; zeta has no cell -> last
        assert models() == ["scripted/tuned", "scripted/base", "scripted/zeta"]
        assert headers.nth(1).get_attribute("aria-sort") is None
        headers.nth(0).click()  # model name, ascending
        assert models() == ["scripted/base", "scripted/tuned", "scripted/zeta"]
        # one per-dimension chart per model that has rubric dimensions, with a bar per dimension
        charts = page.locator("svg.dimchart")
        assert charts.count() == 2
        assert charts.first.locator("rect").count() == 2
        # the cell link opens the log file that exists
        href = (
            page.locator("#leaderboard tbody tr")
            .first.locator("a.mean")
            .first.get_attribute("href")
        )
        assert (site.parent / href).is_file()
        assert errors == []
        assert all(url.startswith("file://") for url in requests)
        browser.close()


def test_superseded_logs_carry_their_status(site):
    data = json.loads((site.parent / "leaderboard.json").read_text())
    zeta = next(c for c in data["cells"] if c["model"] == "scripted/zeta")
    assert zeta["other_log_status"] == ["success"] and zeta["status"] == "success"
    assert "1 other log(s) not used: success; the newest successful log is used" in site.read_text()


def test_a_corrupt_log_fails_the_build_naming_it(site, tmp_path):
    """Chosen: fail, not skip (a board that silently drops a run misleads; docs/errors.md)."""
    from caml_evals.errors import LogReadError

    logs = tmp_path / "logs"
    shutil.copytree(site.parent / "logs", logs)
    good = min(logs.glob("*.eval"))
    bad = logs / ("2020-01-01T00-00-00+00-00_" + good.name.split("_", 1)[1])
    bad.write_bytes(good.read_bytes()[:400])
    with pytest.raises(LogReadError, match=re.escape(str(bad)) + ".*cannot read"):
        build_leaderboard([logs], n_resamples=100)
    with pytest.raises(LogReadError, match="no such log file or folder"):
        build_leaderboard([tmp_path / "nope"], n_resamples=100)


def test_unwritable_site_folder_is_one_error_and_nothing_written(site, tmp_path):
    from caml_evals.errors import OutputError

    board = build_leaderboard([site.parent / "logs"], n_resamples=100)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="in the way"):
        write_site(board, blocker / "site")
    assert blocker.read_text() == "x"
    assert list(tmp_path.iterdir()) == [blocker]


def _table_rows(page: str, table_id: str) -> list[list[str]]:
    """The body rows of one table of the page, as cell texts (the stdlib HTML parser)."""
    from html.parser import HTMLParser

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.inside, self.rows, self.cell = False, [], None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.inside = dict(attrs).get("id") == table_id
            elif self.inside and tag == "tr":
                self.rows.append([])
            elif self.inside and tag == "td":
                self.cell = ""

        def handle_endtag(self, tag):
            if self.inside and tag == "td":
                self.rows[-1].append(self.cell)
                self.cell = None
            elif tag == "table":
                self.inside = False

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parser = Rows()
    parser.feed(page)
    return [r for r in parser.rows if r]


def test_probed_runs_are_a_table_beside_the_plain_cell(tmp_path, site):
    logs = probed_logs(tmp_path / "logs")
    board = build_leaderboard([tmp_path / "logs"], n_resamples=200)
    # the plain run is the benchmark's cell; the probed runs are not cells
    assert [(c.model, c.task, c.log) for c in board.cells] == [
        ("scripted/m", "caml_evals/human_compassion", logs["plain"])
    ]
    assert sorted(p.probe for p in board.probes) == [
        "cot",
        "cot, prefill=dismissive_cost",
        "prefill=dismissive_cost",
        "pushback=skip_ethics",
    ]
    page = write_site(board, tmp_path / "site")
    rows = _table_rows(page.read_text(), "probe-table")
    assert [
        "scripted/m",
        "human_compassion",
        "prefill=dismissive_cost",
        "1.000",
        "0.000 [0.000, 0.000]",
        "drop vs plain",
        "-1.000",
        "[-1.000, -1.000]",
        "3",
        "sample id",
    ] in rows
    assert any(
        r[2:]
        == [
            "pushback=skip_ethics",
            "",
            "",
            "retention after pushback",
            "0.000",
            "[0.000, 0.000]",
            "3",
            "sample id",
        ]
        for r in rows
    )
    assert any(r[5:7] == ["considered but dropped", "1.000"] for r in rows)
    data = json.loads((page.parent / "leaderboard.json").read_text())
    assert {p["probe"] for p in data["probes"]} == {p.probe for p in board.probes}
    assert 'id="probe-table"' not in site.read_text()  # no probed runs, no probe table
