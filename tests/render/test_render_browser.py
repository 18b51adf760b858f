"""The shipped templates render sanely in a real browser engine (headless Chromium).

Images are served from a local PNG by routing requests (no network); screenshots at 600 px and
375 px are written to the test's tmp dir. Skips without /usr/bin/chromium unless CI=true.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from newsletter.render.fixtures import render_fixture

CHROMIUM = Path(os.environ.get("NEWSLETTER_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


def _png(width: int, height: int) -> bytes:
    """A solid-colour RGB PNG, built by hand (no imaging library needed)."""
    row = b"\x00" + bytes([31, 79, 143]) * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"CI=true but {CHROMIUM} is missing: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


LAYOUT = """() => {
  const images = [...document.images].filter(i => !i.src.includes('/t/o/'));
  return {
    scrollWidth: document.documentElement.scrollWidth,
    images: images.map(i => ({src: i.src, natural: i.naturalWidth, alt: i.alt,
                              width: i.getBoundingClientRect().width,
                              right: i.getBoundingClientRect().right})),
    links: [...document.querySelectorAll('a[href]')].length,
    text: document.body.innerText,
  };
}"""


def _layout(browser, html: str, width: int, shot: Path) -> dict:
    page = browser.new_page(viewport={"width": width, "height": 900})
    image = _png(600, 320)
    requested: list[str] = []

    def serve(route) -> None:
        requested.append(route.request.url)
        if route.request.resource_type == "image":
            route.fulfill(status=200, content_type="image/png", body=image)
        else:
            route.abort()

    page.route("**/*", serve)
    page.set_content(html, wait_until="load")
    page.screenshot(path=str(shot), full_page=True)
    result = page.evaluate(LAYOUT)
    result["requested"] = requested
    page.close()
    return result


@pytest.mark.parametrize("template", ["digest", "trigger"])
@pytest.mark.parametrize("width", [600, 375])
def test_layout_is_sane_in_chromium(browser, request, settings, template, width, tmp_path) -> None:
    compiled = request.getfixturevalue(template)
    rendered = render_fixture(compiled, settings)
    shot = tmp_path / f"{template}-{width}.png"
    layout = _layout(browser, rendered.html, width, shot)
    assert shot.stat().st_size > 10_000  # a real screenshot, not a blank page
    assert len(layout["images"]) == 8  # hero + 7 cards (fixture: every item has an image)
    for image in layout["images"]:
        assert image["natural"] == 600, image  # the (routed) image really loaded
        assert image["width"] > 50 and image["right"] <= width + 0.5, image
        assert image["alt"]
    assert layout["scrollWidth"] <= width, "horizontal overflow"
    assert any("/t/o/" in url for url in layout["requested"])  # open pixel requested
    assert "Async Python in practice" in layout["text"]
    assert "Unsubscribe" in layout["text"]
    assert layout["links"] >= 8 * 3


HONEYPOT = """() => {
  const links = [...document.querySelectorAll('a[href*="/t/h/"]')];
  return links.map(a => ({
    width: a.getBoundingClientRect().width,
    height: a.getBoundingClientRect().height,
    rendered: a.offsetParent !== null,
    hidden: a.closest('[aria-hidden="true"]') !== null,
    inText: document.body.innerText.includes(a.textContent) && a.textContent.trim() !== '',
  }));
}"""


@pytest.mark.parametrize("template", ["digest", "trigger"])
def test_the_honeypot_link_is_invisible_in_chromium(browser, request, settings, template) -> None:
    rendered = render_fixture(request.getfixturevalue(template), settings)
    page = browser.new_page(viewport={"width": 600, "height": 900})
    page.route("**/*", lambda route: route.abort())
    page.set_content(rendered.html, wait_until="load")
    [link] = page.evaluate(HONEYPOT)
    snapshot = page.locator("body").aria_snapshot()
    page.close()
    assert link == {"width": 0, "height": 0, "rendered": False, "hidden": True, "inText": False}
    assert "/t/h/" not in snapshot and "\u200b" not in snapshot  # nor in the accessibility tree
