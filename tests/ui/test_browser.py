"""The dashboard in a real browser: Debian's Chromium driven by Playwright (its own browsers are not used).

Chromium: ``FLOXIDE_TEST_CHROMIUM`` or ``chromium`` on ``PATH`` (scripts/test.sh installs
Debian's ``chromium``); missing, the tests skip locally and fail in CI. Screenshots of the
pages go to ``FLOXIDE_TEST_ARTIFACTS`` (a directory; default: the test session's temporary
directory, printed at the end) as ``<test>-<what>.png``.

Cases:
* a filter applies when chosen; a new run appears in the runs list and moves to Completed
  without a page reload;
* a failed run's page: clicking the failing node in the picture shows its errors with the
  traceback, in two clicks from the runs list, and the lines its steps logged;
* the run page follows a run live, pause (behind the confirmation) holds it, resume
  continues it, cancel ends it; the read-only dashboard shows no action buttons;
* a 201-node workflow's page shows every node, and the node filter narrows the table.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import BATCH, COUNTDOWN, NAMESPACE, WIDE, Dashboard
from tests.worker.conftest import IN_CI
from tests.worker.helpers import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(300)]

WAIT_MS = 30_000

Submit = Callable[..., str]


def _chromium() -> str:
    found = os.environ.get("FLOXIDE_TEST_CHROMIUM") or shutil.which("chromium")
    if found is None:
        if IN_CI:
            pytest.fail("chromium is not installed, but CI=true (scripts/test.sh installs it)", pytrace=False)
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("FLOXIDE_TEST_ARTIFACTS")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, artifacts: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    yield opened
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        opened.screenshot(path=str(artifacts / f"{request.node.name}-failure.png"), full_page=True)
    context.close()
    assert not problems, f"JavaScript errors on the page: {problems}"


def shot(page: Any, artifacts: Path, request: pytest.FixtureRequest, what: str) -> Path:
    path = artifacts / f"{request.node.name}-{what}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def test_runs_appear_and_finish_live(
    dashboard: Dashboard, page: Any, submit: Submit, artifacts: Path, request: pytest.FixtureRequest
) -> None:
    page.goto(f"{dashboard.url}/?namespace={NAMESPACE}")
    with page.expect_navigation():
        page.select_option("select[name=workflow]", "countdown")  # a filter applies when chosen
    assert "workflow=countdown" in page.url and "namespace=ui" in page.url
    page.wait_for_selector("#live.on")  # the event stream is open
    page.evaluate("window.notReloaded = true")
    run_id = submit(COUNTDOWN, {"steps": 25, "delay": 0.1})
    row = page.locator(f'tr[data-run="{run_id}"]')
    row.wait_for()
    page.wait_for_selector(f'tr[data-run="{run_id}"][data-status="Running"]')
    shot(page, artifacts, request, "running")
    page.wait_for_selector(f'tr[data-run="{run_id}"][data-status="Completed"]')
    assert "25/25" in row.inner_text()
    assert page.evaluate("window.notReloaded") is True
    shot(page, artifacts, request, "completed")


def test_a_failed_nodes_traceback_in_two_clicks(
    dashboard: Dashboard, page: Any, submit: Submit, artifacts: Path, request: pytest.FixtureRequest
) -> None:
    run_id = submit(BATCH, {"count": 20, "delay": 0.01, "bad": [13]})
    page.goto(f"{dashboard.url}/?namespace={NAMESPACE}&workflow=batch&status=Failed")
    page.wait_for_selector(f'tr[data-run="{run_id}"]')
    page.click(f'tr[data-run="{run_id}"] a')  # click 1: the run
    page.wait_for_selector("#run-status:text('Failed')")
    assert "piece 13 is bad" in page.inner_text("#run-error")
    page.click('#picture g.node[id="node-work"]')  # click 2: the failed node in the picture
    panel = page.locator("#node-panel")
    panel.locator("text=ValueError").first.wait_for()
    traceback = panel.locator("pre.traceback").first
    assert "ValueError: piece 13 is bad" in traceback.inner_text()
    assert "Traceback (most recent call last)" in traceback.inner_text()
    assert "attempt 3" in panel.inner_text() and "attempt 1" in panel.inner_text()

    def logs_shown() -> bool:  # workers ship what steps log a few times a second: look again until there
        if panel.locator("pre.logs").count() and "working on piece 13" in panel.inner_text():
            return True
        page.click('#picture g.node[id="node-work"]')
        page.wait_for_timeout(300)
        return False

    wait_until(logs_shown, timeout=30, every=0.2, what="the node's logged lines in the panel")
    fill = page.locator('#picture g.node[id="node-work"] path, #picture g.node[id="node-work"] polygon')
    assert fill.first.get_attribute("fill") == "#fecaca"  # the failed colour
    shot(page, artifacts, request, "run-page")

    page.click('tr.node[data-node="spread"]')  # the node table works the same
    panel.locator("h2:has-text('spread')").wait_for()
    assert "No errors." in panel.inner_text()


def _confirm(page: Any, button: str) -> None:
    page.click(button)
    page.wait_for_selector("dialog#confirm[open]")
    page.click("#confirm-ok")


def test_pause_resume_and_cancel(
    dashboard: Dashboard,
    readonly: Dashboard,
    page: Any,
    submit: Submit,
    artifacts: Path,
    request: pytest.FixtureRequest,
) -> None:
    run_id = submit(COUNTDOWN, {"steps": 1000, "delay": 0.05})
    path = f"/runs/{NAMESPACE}/countdown/{run_id}"

    page.goto(readonly.url + path)
    page.wait_for_selector("#run-status")
    assert page.locator("button[data-action]").count() == 0

    page.goto(dashboard.url + path)
    page.wait_for_selector("#run-status:text('Running')")
    first = page.inner_text("#run-progress")
    page.wait_for_function(f"document.getElementById('run-progress').textContent !== {first!r}")
    shot(page, artifacts, request, "running")

    page.click("button[data-action='pause']")  # the confirmation's "Back" leaves the run alone
    page.wait_for_selector("dialog#confirm[open]")
    assert "Pause this run?" in page.inner_text("#confirm-text")
    page.click("dialog#confirm button[value='cancel']")
    page.wait_for_timeout(500)
    assert page.inner_text("#run-status") == "Running"

    _confirm(page, "button[data-action='pause']")
    page.wait_for_selector("#run-status:text('Paused')")
    assert "Paused" in page.inner_text("#flash")
    page.wait_for_timeout(2000)  # a step running when the run paused finishes, and the page shows it
    held = page.inner_text("#run-progress")
    page.wait_for_timeout(1500)
    assert page.inner_text("#run-progress") == held
    shot(page, artifacts, request, "paused")

    _confirm(page, "button[data-action='resume']")
    page.wait_for_selector("#run-status:text('Running')")
    page.wait_for_function(f"document.getElementById('run-progress').textContent !== {held!r}")

    _confirm(page, "button[data-action='cancel'][data-interrupt='true']")
    page.wait_for_selector("#run-status:text('Cancelled')")
    assert page.locator("button[data-action]").count() == 0
    shot(page, artifacts, request, "cancelled")


def test_a_wide_graph_stays_readable(
    dashboard: Dashboard, page: Any, submit: Submit, artifacts: Path, request: pytest.FixtureRequest
) -> None:
    run_id = submit(WIDE, 5)
    page.goto(f"{dashboard.url}/runs/{NAMESPACE}/wide/{run_id}")
    page.wait_for_selector("#run-status:text('Completed')")
    assert page.locator("tr.node").count() == 201
    assert page.locator("#picture g.node").count() == 201
    page.fill("#node-filter", "leaf_19")
    assert page.locator("tr.node:visible").count() == 10  # leaf_190 .. leaf_199
    page.fill("#node-filter", "")
    page.click('tr.node[data-node="leaf_150"]')
    page.locator("#node-panel h2:has-text('leaf_150')").wait_for()
    shot(page, artifacts, request, "run-page")
