"""The live dashboard in a real headless Chromium (Debian's /usr/bin/chromium, Playwright).

Browser downloads are not available here: Playwright drives the system's chromium
through ``executable_path``. ``.ci/run`` installs it with apt-get when missing.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.optimize import BootstrapFewShotWithRandomSearch
from tests.dspex_actors.fixture_types import API_KEY, SystemFactory
from tests.dspex_actors.optimize.test_compile_jobs import exact, trainset

pytestmark = pytest.mark.browser

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


@pytest.fixture
def browser_page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.load(response)
        return result


def test_the_page_shows_the_tree_a_restart_live_and_candidate_scores_of_a_compile(
    start_system: SystemFactory, browser_page: Any, tmp_path: Path
) -> None:
    system = start_system()
    url = system.serve_dashboard(allow_control=True)
    assert url.startswith("http://127.0.0.1:")
    dx.Predict("question -> answer")(question="What is the capital of France?")  # before the page
    page = browser_page
    page.goto(url)
    lm_path = f"{system.name}/lm:default"
    restarts = page.locator(f'[data-restarts="{lm_path}"]')
    restarts.wait_for()
    assert restarts.inner_text() == "0"
    assert page.locator(f'[data-node="{system.name}/programs"]').count() == 1
    assert page.locator(f'[data-node="{system.name}/events"]').count() == 1
    # A late browser gets the recent history: the call made before it connected.
    page.locator('#events div[data-topic="program/stop"]').first.wait_for()
    page.evaluate("window.__not_reloaded = true")

    killed = _post(url + "api/kill", {"path": [system.name, "lm:default"]})
    assert killed == {"killed": lm_path}
    started = time.monotonic()
    page.wait_for_function(
        f"document.querySelector('[data-restarts=\"{lm_path}\"]').textContent === '1'"
    )
    shown_after = time.monotonic() - started
    assert page.evaluate("window.__not_reloaded") is True
    assert "killed" in page.locator(f'[data-node="{lm_path}"] .crash').first.inner_text()
    assert shown_after < 2.0  # the bound is 1 s; 2 s leaves room for a loaded machine

    job = system.compile(
        BootstrapFewShotWithRandomSearch(metric=exact, num_candidate_programs=2),
        student=dx.Predict("question -> answer"),
        trainset=trainset()[:4],
    )
    job.result(timeout=30, display_progress=False)
    card = page.locator(f'.job[data-job="{job.id}"]')
    card.wait_for()
    page.wait_for_function(
        f"document.querySelectorAll('.job[data-job=\"{job.id}\"] circle.candidate').length >= 3"
    )
    scores = [float(s) for s in card.locator(".trials .score").all_inner_texts()]
    assert len(scores) >= 3 and all(0 <= s <= 100 for s in scores)
    best = job.status().best_score
    page.wait_for_function(
        f"Number(document.querySelector('.job[data-job=\"{job.id}\"] .best').textContent)"
        f" === {best}"
    )
    assert page.locator("#lms tr[data-lm=default]").count() == 1
    assert API_KEY not in page.content()
    page.fill("#filter", "compile/")
    visible = page.locator("#events div:not([hidden])").all_inner_texts()
    assert visible and all(" compile/" in line for line in visible)
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
