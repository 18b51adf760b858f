"""The web UI end to end in a real headless Chromium (Playwright), against a real server and a
real SMTP server in its own process: sign in, edit a template and watch the preview change,
see a lint error, publish, send a test email, look up a subscriber and read why. Every page
passes axe-core with no critical violation; a <script> payload runs neither in the editor nor
in the preview. Screenshots go to test-artifacts/ui/ (or $NEWSLETTER_TEST_ARTIFACTS).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from ui_world import ADMIN, EDITOR, NOW, PASSWORD, SECRET, Clock, build_ui_world

from newsletter.config import Settings
from newsletter.db import make_engine, upgrade
from newsletter.render.compile import TEMPLATES_DIR

sys.path.insert(0, str(Path(__file__).parents[1] / "deliver"))
from smtp_server import SmtpTestServer, start_smtp_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = Path(os.environ.get("NEWSLETTER_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
AXE = Path(__file__).with_name("axe.min.js")
ARTIFACTS = Path(
    os.environ.get("NEWSLETTER_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")
)
# the <mj-raw> control flow wraps whole sections (the linter refuses it inside a column);
# the unsubscribe line stays line 8, where the misspelt variable below is reported
MJML = """<mjml>
  <mj-body>
    <mj-section><mj-column>
      <mj-text>Browser edit for {{ subscriber.first_name or "you" }}</mj-text>
    </mj-column></mj-section><mj-raw>{% if hero %}</mj-raw><mj-section><mj-column>
      <mj-text>Top pick: {{ hero.item.title }}. {{ hero.reason.text }}</mj-text>
    </mj-column></mj-section><mj-raw>{% endif %}</mj-raw><mj-section><mj-column>
      <mj-text><a href="{{ unsubscribe_url }}">Unsubscribe</a> {{ postal_address }}</mj-text>
    </mj-column></mj-section>
  </mj-body>
</mjml>"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpTestServer]:
    with start_smtp_server(tmp_path_factory.mktemp("smtp") / "mail") as server:
        yield server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpTestServer) -> Iterator[dict]:
    """The app served by uvicorn on a free port, on a seeded SQLite database."""
    import uvicorn

    from newsletter.api.app import create_app

    folder = tmp_path_factory.mktemp("ui-site")
    engine = make_engine(f"sqlite:///{folder / 'ui.db'}")
    upgrade(engine)
    world = build_ui_world(engine)
    port = _free_port()
    settings = Settings(
        secret_key=SECRET,
        base_url=f"http://127.0.0.1:{port}",
        smtp_url=smtp.url,
        sender="The Daily <news@example.com>",
    )
    app = create_app(settings=settings, engine=engine, clock=Clock(NOW))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the web server did not start"
    yield {"url": f"http://127.0.0.1:{port}", "world": world, "engine": engine}
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"CI=true but {CHROMIUM} is missing: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


def _shot(page: Any, name: str) -> None:
    folder = ARTIFACTS / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _sign_in(page: Any, url: str, email: str) -> None:
    page.goto(f"{url}/admin/campaigns")
    assert "/admin/login" in page.url  # refused without a session
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{url}/admin/campaigns")


def _replace(page: Any, part: str, text: str) -> None:
    """Select everything in one CodeMirror editor and type over it, as a person would."""
    page.click(f".field-{part} .CodeMirror-code")
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)


def _wait_preview(page: Any, previous: str | None) -> str:
    """Wait until a preview newer than `previous` arrived; its sequence number."""
    page.wait_for_selector(
        "body[data-previews]" if previous is None else f"body:not([data-previews='{previous}'])"
    )
    return str(page.get_attribute("body", "data-previews"))


def test_a_marketer_edits_previews_publishes_test_sends_and_asks_why(
    browser: Any, site: dict, smtp: SmtpTestServer
) -> None:
    url, world = site["url"], site["world"]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, url, ADMIN)
    _shot(page, "01-campaigns")
    page.goto(f"{url}/admin/templates/digest")
    seen = _wait_preview(page, None)
    frame = page.frame_locator("#preview-frame")
    assert "picks" in frame.locator("body").inner_text()
    page.fill("#preview-subscriber", world.email)
    seen = _wait_preview(page, seen)
    page.wait_for_selector("#preview-data:has-text('their newest message')")
    _replace(page, "mjml", MJML)
    _replace(page, "subject", "Hello from the browser, {{ subscriber.first_name }}")
    page.wait_for_selector("#preview-subject:has-text('Hello from the browser, Reader')")
    frame.locator("text=Browser edit for Reader").wait_for()
    assert "Top pick:" in frame.locator("body").inner_text()
    _shot(page, "02-editor-preview")
    page.check("input[name=width][value=mobile]")
    assert page.locator("#preview-frame").bounding_box()["width"] == 375
    _shot(page, "03-preview-mobile")
    _replace(page, "mjml", MJML.replace("{{ postal_address }}", "{{ postal_adress }}"))
    page.wait_for_selector("#issues button:has-text('MJML, line 8')")
    assert "did you mean 'postal_address'" in page.inner_text("#issues")
    assert page.locator(".field-mjml .cm-lint-line").count() == 1
    _shot(page, "04-lint-error")
    _replace(page, "mjml", MJML)
    page.wait_for_selector("#no-issues:not([hidden])")
    page.click("text=Save as a new version")
    page.wait_for_selector(".notice:has-text('Saved as version 1.')")
    page.click("text=Publish version 1")
    page.wait_for_selector(".notice:has-text('Published version 1: the next run uses it.')")
    assert "Published: version 1" in page.inner_text("main")
    page.fill("#preview-subscriber", world.email)
    page.fill("#test-to", "marketer@example.org")
    page.click("text=Send test")
    page.wait_for_selector(".notice:has-text('Test email sent to marketer@example.org')")
    assert smtp.wait_for(1) == 1
    (received,) = smtp.received()
    message = message_from_bytes(received.data)
    assert received.recipients == ("marketer@example.org",)
    assert message["Subject"] == "[Test] Hello from the browser, Reader"
    _shot(page, "05-published-and-test-sent")
    page.click("nav >> text=Subscribers")
    page.fill("#q", world.email)
    page.click("form[role=search] button")
    page.click(f"a[href='/admin/subscribers/{world.subscriber_id}']")
    why = page.inner_text("#why")
    assert f"Sent in run {world.run_id}" in why and "What they got, and why each pick" in why
    _shot(page, "06-subscriber-why")
    assert errors == []
    page.close()


PAGES = [
    "/admin/campaigns",
    "/admin/campaigns/weekly",
    "/admin/runs/{run}/report",
    "/admin/templates",
    "/admin/templates/digest",
    "/admin/templates/trigger",
    "/admin/segments",
    "/admin/segments/everyone",
    "/admin/subscribers?q=reader",
    "/admin/subscribers/{subscriber}",
    "/admin/campaigns/no-such-campaign",
]


def test_every_page_has_no_critical_accessibility_violation(browser: Any, site: dict) -> None:
    url, world = site["url"], site["world"]
    context = browser.new_context(bypass_csp=True)  # to inject axe-core
    page = context.new_page()
    found: dict[str, list[str]] = {}

    def audit(path: str) -> None:
        page.add_script_tag(path=str(AXE))
        result = page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))"
        )
        found[path] = [f"{v['id']} ({v['nodes']})" for v in result if v["impact"] == "critical"]

    page.goto(f"{url}/admin/login")
    audit("/admin/login")
    _sign_in(page, url, EDITOR)
    for template in PAGES:
        path = template.format(run=world.run_id, subscriber=world.subscriber_id)
        page.goto(url + path)
        if path.startswith("/admin/templates/"):
            page.wait_for_selector("body[data-previews]")
        audit(path)
    _shot(page, "07-last-audited-page")
    context.close()
    assert found and all(v == [] for v in found.values()), found


def test_a_script_in_a_template_runs_neither_in_the_editor_nor_in_the_preview(
    browser: Any, site: dict
) -> None:
    url = site["url"]
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    _sign_in(page, url, EDITOR)
    page.goto(f"{url}/admin/templates/trigger")
    _wait_preview(page, None)
    shipped = (TEMPLATES_DIR / "trigger" / "template.mjml").read_text(encoding="utf-8")
    evil = shipped.replace(
        "</mj-body>",
        "<mj-raw><script>parent.document.title='owned';alert('preview')</script>"
        '<img src="x" onerror="alert(\'img\')" /></mj-raw>\n</mj-body>',
        1,
    )
    _replace(page, "mjml", evil)
    _replace(page, "text", "</textarea><script>alert('editor')</script>{{ subscriber.email }}")
    page.wait_for_selector(
        "#preview-text:has-text(\"<script>alert('editor')</script>\")", state="attached"
    )
    assert page.inner_text("#issues") == ""
    page.click("text=Save as a new version")
    page.wait_for_selector(".notice:has-text('Saved as version')")
    _wait_preview(page, None)  # the saved payload, loaded into a fresh editor page
    page.wait_for_selector("#preview-time:has-text('Rendered in')")
    time.sleep(0.5)  # give any script that could run the time to run
    assert dialogs == [] and "owned" not in page.title()
    assert "alert('editor')" in page.locator(".field-text .CodeMirror").inner_text()
    assert page.locator("#preview-frame").get_attribute("sandbox") == ""
    frame = page.frame_locator("#preview-frame")
    assert frame.locator("script").count() == 1  # in the preview's document, and inert
    assert "owned" not in frame.locator("body").inner_text()
    _shot(page, "08-script-payload-inert")
    page.close()
