"""A rendered digest is a standards-compliant email with tracked links, reasons and a text part."""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from html.parser import HTMLParser

from newsletter import tokens
from newsletter.plan.experiments import feedback_code, feedback_codes
from newsletter.render.context import build_context
from newsletter.render.fixtures import FIXTURE_NOW as NOW
from newsletter.render.fixtures import fixture_input, render_fixture
from newsletter.render.render import render_message


class _Links(HTMLParser):
    """Collect every <a href> and <img src> of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"] or "")
        if tag == "img" and values.get("src"):
            self.images.append(values["src"] or "")


def _parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _slots() -> list[dict]:
    return [slot for section in fixture_input()["sections"] for slot in section["slots"]]


def test_serialization_uses_crlf_and_short_lines(rendered_digest) -> None:
    data = rendered_digest.bytes
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")
    lines = data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76  # quoted-printable limit
    assert all(byte < 128 for byte in data)  # 7-bit clean: QP bodies, RFC 2047 headers


def test_parses_into_text_then_html_without_defects(rendered_digest) -> None:
    message = _parse(rendered_digest.bytes)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert all(not p.defects for p in message.walk())
    html = message.get_body(("html",)).get_content()
    assert html.replace("\r\n", "\n") == rendered_digest.html.replace("\r\n", "\n")
    text = message.get_body(("plain",)).get_content()
    assert text.replace("\r\n", "\n") == rendered_digest.text


def test_no_unrendered_jinja_remains(rendered_digest) -> None:
    for part in (rendered_digest.html, rendered_digest.text, rendered_digest.subject):
        assert "{{" not in part and "{%" not in part and "{#" not in part


def test_every_http_link_is_tracked_and_verifies_to_its_destination(
    rendered_digest, settings
) -> None:
    parser = _Links()
    parser.feed(rendered_digest.html)
    expected = {slot["item"]["url"]: slot["position"] for slot in _slots()}
    seen = {}
    own = ("/u/", "/p/", "/v/", "/t/h/")  # account pages; the honeypot has its own test
    for href in parser.hrefs:
        assert href.startswith(settings.base_url + "/"), href
        path = href[len(settings.base_url) :]
        if path.startswith(own):
            continue
        assert path.startswith("/t/c/"), href
        payload = tokens.verify_click(path[len("/t/c/") :], secret_key=settings.secret_key)
        assert payload.message_id == 1
        seen[payload.url] = payload.slot
    assert seen == expected  # every item linked, each credited to its own slot


def test_open_pixel_and_account_links_carry_valid_tokens(rendered_digest, settings) -> None:
    parser = _Links()
    parser.feed(rendered_digest.html)
    pixels = [src for src in parser.images if "/t/o/" in src]
    assert len(pixels) == 1
    token = pixels[0].rsplit("/", 1)[1].removesuffix(".gif")
    assert tokens.verify_open(token, secret_key=settings.secret_key).message_id == 1
    for prefix, verify in (
        ("/u/", tokens.verify_unsubscribe),
        ("/p/", tokens.verify_preferences),
        ("/v/", tokens.verify_view),
    ):
        links = [h for h in parser.hrefs if h.startswith(settings.base_url + prefix)]
        assert links, prefix
        assert verify(links[0].rsplit("/", 1)[1], secret_key=settings.secret_key).message_id == 1


def test_text_part_has_every_title_reason_and_a_tracked_link(rendered_digest, settings) -> None:
    text = rendered_digest.text
    blocks = text.split("\n\n")
    for slot in _slots():
        block = next(b for b in blocks if slot["item"]["title"] in b)
        assert slot["reason"]["text"] in block
        link = re.search(r"https://news\.example\.com/t/c/(\S+)", block)
        assert link, block
        payload = tokens.verify_click(link.group(1), secret_key=settings.secret_key)
        assert payload.url == slot["item"]["url"]
    assert "Unsubscribe: https://news.example.com/u/" in text


def test_reason_line_of_every_slot_is_in_the_html(rendered_digest) -> None:
    for slot in _slots():
        reason = slot["reason"]["text"].replace("“", "&ldquo;")
        assert slot["reason"]["text"] in rendered_digest.html or reason in rendered_digest.html


def test_headers_follow_rfc_8058_and_bulk_mail_rules(rendered_digest, settings) -> None:
    message = _parse(rendered_digest.bytes)
    assert message["From"] == settings.sender
    assert message["To"] == "Ada Lovelace <ada@example.org>"
    assert message["Subject"] == "Async Python in practice and 7 more picks for you"
    assert message["Date"].datetime == NOW
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = str(message["List-Unsubscribe"])
    https, mailto = re.findall(r"<([^>]+)>", unsubscribe)
    assert https.startswith("https://news.example.com/u/")
    assert mailto.startswith("mailto:unsubscribe@news.example.com?subject=")
    assert message["List-Id"] == '"The Weekly Read" <weekly-read.news.example.com>'
    code = feedback_code("personalized", secret_key=settings.secret_key)
    assert message["Feedback-ID"] == f"3:11:{code}:news-example-com"
    assert message["Message-ID"] == rendered_digest.message_id_header
    assert message["MIME-Version"] == "1.0"


def test_message_id_is_stable_across_retries_and_unique_per_message(digest, settings) -> None:
    first = render_fixture(digest, settings)
    again = render_fixture(digest, settings)
    other = render_fixture(digest, settings, message_id=2)
    assert first.message_id_header == again.message_id_header
    assert first.bytes == again.bytes  # a retry sends byte-identical content
    assert other.message_id_header != first.message_id_header
    assert re.fullmatch(r"<nl\.1\.[0-9a-f]{12}@news\.example\.com>", first.message_id_header)


def test_html_and_script_in_fields_are_escaped(digest, settings) -> None:
    data = fixture_input(name='<script>alert("x")</script> Eve')
    data["sections"][0]["slots"][0]["item"]["title"] = "<img src=x onerror=alert(1)>"
    data["sections"][0]["slots"][0]["item"]["summary"] = "a & b </div>"
    data["sections"][0]["slots"][0]["reason"]["text"] = "<b>bold</b>"
    context = build_context(data, settings=settings)
    rendered = render_message(digest, context, settings=settings, now=NOW)
    html = rendered.html
    assert "<script>" not in html and "<img src=x" not in html and "<b>bold</b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "a &amp; b &lt;/div&gt;" in html
    message = _parse(rendered.bytes)
    assert message["To"].addresses[0].display_name == '<script>alert("x")</script> Eve'


def test_non_ascii_subject_and_names_are_encoded_and_decode_back(digest, settings) -> None:
    data = fixture_input(name="Zoë Ångström")
    data["sections"][0]["slots"][0]["item"]["title"] = "Café ☕ — crème brûlée, 東京"
    rendered = render_message(
        digest, build_context(data, settings=settings), settings=settings, now=NOW
    )
    message = _parse(rendered.bytes)
    assert message["Subject"] == "Café ☕ — crème brûlée, 東京 and 7 more picks for you"
    assert message["To"].addresses[0].display_name == "Zoë Ångström"
    assert "Café ☕ — crème brûlée, 東京" in message.get_body(("html",)).get_content()


def test_javascript_item_urls_are_refused_at_context_build(settings) -> None:
    import pytest

    from newsletter.render.context import ContextError

    data = fixture_input()
    data["sections"][0]["slots"][0]["item"]["url"] = "javascript:alert(1)"
    with pytest.raises(ContextError, match="http"):
        build_context(data, settings=settings)


def test_trigger_template_renders_with_its_headline(trigger, settings) -> None:
    rendered = render_fixture(trigger, settings)
    assert rendered.subject == "New in python: Async Python in practice"
    assert "New in python" in rendered.html
    assert rendered.text.startswith("New in python\n")
    message = _parse(rendered.bytes)
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_trigger_template_has_a_left_behind_variant(trigger, settings) -> None:
    left = {"kind": "abandoned", "topic": None, "label": None}
    rendered = render_fixture(trigger, settings, trigger=left)
    assert rendered.subject == "Still thinking about Async Python in practice?"
    assert "you left these behind" in rendered.html
    assert "Picked for you" in rendered.text.splitlines()[0]


def test_feedback_id_names_the_arm_only_by_an_opaque_code(digest, settings) -> None:
    headers = {}
    for arm in ("personalized", "popular"):
        rendered = render_fixture(digest, settings, arm=arm)
        headers[arm] = str(_parse(rendered.bytes)["Feedback-ID"])
    codes = feedback_codes(secret_key=settings.secret_key)
    for arm, header in headers.items():
        campaign, run, code, sender = header.split(":")
        assert (campaign, run, sender) == ("3", "11", "news-example-com")
        assert code == codes[arm] and re.fullmatch(r"[0-9a-f]{8}", code)
        assert not any(name in header for name in codes)  # no arm name reaches the reader
    assert headers["personalized"] != headers["popular"]
    assert feedback_codes(secret_key="another install")["popular"] != codes["popular"]
