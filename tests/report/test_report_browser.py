"""The weekly report page is readable on a phone: headless Chromium at 375 px.

Skips without /usr/bin/chromium unless CI=true (like tests/render/test_render_browser.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import Engine

from newsletter.report.weekly import build_weekly_report
from newsletter.report.weekly_html import write_weekly_report

CHROMIUM = Path(os.environ.get("NEWSLETTER_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
PHONE = 375

pytestmark = pytest.mark.browser

LAYOUT = """() => ({
  scrollWidth: document.documentElement.scrollWidth,
  charts: [...document.querySelectorAll('svg.chart')].map(s => {
    const r = s.getBoundingClientRect();
    return {width: r.width, height: r.height, right: r.right,
            text: [...s.querySelectorAll('text')].map(t => t.textContent).join(' ')};
  }),
  tables: [...document.querySelectorAll('.scroll')].map(d => d.getBoundingClientRect().right),
  fontSize: parseFloat(getComputedStyle(document.body).fontSize),
  verdict: document.querySelector('.verdict').innerText,
  requests: performance.getEntriesByType('resource').length,
})"""


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"CI=true but {CHROMIUM} is missing: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


def test_report_fits_a_phone_with_titled_charts(  # type: ignore[no-untyped-def]
    browser, simulated: tuple[Engine, str], tmp_path: Path
) -> None:
    engine, _ = simulated
    path = write_weekly_report(
        build_weekly_report(engine, campaign="weekly-digest"), tmp_path / "r.html"
    )
    page = browser.new_page(viewport={"width": PHONE, "height": 800})
    page.goto(path.as_uri(), wait_until="load")
    shot = tmp_path / "report-375.png"
    page.screenshot(path=str(shot), full_page=True)
    layout = page.evaluate(LAYOUT)
    page.close()
    assert shot.stat().st_size > 20_000
    assert layout["scrollWidth"] <= PHONE, "the page scrolls sideways on a phone"
    assert all(right <= PHONE for right in layout["tables"])  # wide tables scroll inside
    assert len(layout["charts"]) == 3
    for chart in layout["charts"]:
        assert 250 < chart["width"] <= PHONE and chart["right"] <= PHONE and chart["height"] > 150
    texts = " ".join(c["text"] for c in layout["charts"])
    for title in ("Click-through per week", "Pooled lift over popular", "Catalogue coverage"):
        assert title in texts
    for axis in ("messages clicked (%)", "lift of personalized (%)", "week of the run"):
        assert axis in texts
    assert layout["fontSize"] >= 14
    assert layout["verdict"] and layout["requests"] == 0  # nothing fetched: self-contained
