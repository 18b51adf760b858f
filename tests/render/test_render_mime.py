"""Hand-assembled MIME and compile-time quoted-printable decode to exactly what was rendered."""

from __future__ import annotations

import binascii
import email
import random
from email import policy

import pytest

from newsletter.render.compile import TemplateSource, compile_template, load_template_source
from newsletter.render.context import build_context
from newsletter.render.fixtures import FIXTURE_NOW as NOW
from newsletter.render.fixtures import fixture_input
from newsletter.render.mime import assemble, encode_header, quoted_printable
from newsletter.render.qp import decode, prepare_html, qp_chunk, qp_value
from newsletter.render.render import render_message

ALPHABET = "ab =\t\n\r é“€\x7f.<>&\"'" + "x" * 10


def _random_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 300))) for _ in range(count)]


def _check_lines(encoded: str) -> None:
    lines = encoded.split("\r\n")
    assert max(len(line) for line in lines) <= 76
    assert all(not line.endswith((" ", "\t")) for line in lines)
    assert "\n" not in encoded.replace("\r\n", "")


@pytest.mark.parametrize("text", [*_random_texts(400, seed=5), "", "=", "a" * 300, "=" * 100])
def test_qp_chunks_concatenate_into_valid_qp_that_decodes_back(text) -> None:
    pieces = [qp_chunk(text), qp_value("x" * 80), qp_chunk(text[::-1])]
    encoded = "".join(pieces)
    _check_lines(encoded)
    expected = text + ("x" * 80) + text[::-1]
    normalized = expected.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    assert binascii.a2b_qp(encoded.encode()).decode() == normalized


def test_qp_value_escapes_html_unless_markup() -> None:
    from markupsafe import Markup

    assert decode(qp_value("<b>&'\"")) == "&lt;b&gt;&amp;&#39;&#34;"
    assert decode(qp_value(Markup("<b>ok</b>"))) == "<b>ok</b>"
    assert decode(qp_value(42)) == "42"


def test_prepared_template_output_equals_plain_render(settings) -> None:
    source = load_template_source("digest")
    compiled = compile_template(source)
    assert "|tracked" in prepare_html(compiled.html_source)
    context = build_context(fixture_input(), settings=settings)
    rendered = render_message(compiled, context, settings=settings, now=NOW)
    plain = compiled.html.render({**context, "preheader": rendered.preheader})
    # Same document apart from the tracked hrefs and the pixel, which the QP path adds.
    assert rendered.html.count("<table") == plain.count("<table")
    assert rendered.html.count("Async Python in practice") == plain.count(
        "Async Python in practice"
    )


def test_safe_filter_and_whitespace_control_survive_qp(settings) -> None:
    mjml = (
        "<mjml><mj-body><mj-section><mj-column><mj-text>"
        "{{- '<i>it</i>'|safe -}} | {{ subscriber.name }}"
        "</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    source = TemplateSource(name="t", mjml=mjml, subject="s", preheader="", text="t")
    context = build_context(fixture_input(), settings=settings)
    rendered = render_message(compile_template(source), context, settings=settings, now=NOW)
    assert "<i>it</i>| Ada Lovelace" in rendered.html


def test_assembled_message_matches_what_email_message_parses() -> None:
    text = "Héllo\nline two \n"
    html = "<p>" + "x=y " * 200 + "é</p>\n"
    data = assemble(
        headers=[("From", "a@example.com"), ("To", "b@example.com"), ("Subject", "Ünïcode " * 12)],
        text=text,
        html=html,
        boundary="=_nl_test",
    )
    message = email.message_from_bytes(data, policy=policy.default)
    assert message["Subject"] == ("Ünïcode " * 12).strip()
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert message.get_body(("html",)).get_content().replace("\r\n", "\n") == html
    assert all(not p.defects for p in message.walk())
    assert max(len(line) for line in data.split(b"\r\n")) <= 78


def test_header_injection_is_neutralized() -> None:
    folded = encode_header("Subject", "Hi\r\nBcc: victim@example.com")
    assert "\r\nBcc:" not in folded
    assert folded == "Subject: Hi Bcc: victim@example.com"


def test_quoted_printable_body_ends_with_crlf_and_keeps_trailing_space() -> None:
    encoded = quoted_printable("a \nb\t")
    assert encoded == b"a=20\r\nb=09\r\n"


def test_unfoldable_long_words_are_encoded_so_lines_stay_short() -> None:
    folded = encode_header("Subject", "x" * 2000)
    assert max(len(line) for line in folded.split("\r\n")) <= 78
    from email.header import decode_header, make_header

    assert str(make_header(decode_header(folded.split(": ", 1)[1]))) == "x" * 2000


def test_invalid_recipient_is_a_render_error(settings, digest) -> None:
    from newsletter.render.sandbox import RenderError

    data = fixture_input()
    data["subscriber"]["email"] = "not-an-address"
    with pytest.raises(RenderError, match="not an email address"):
        render_message(digest, build_context(data, settings=settings), settings=settings, now=NOW)


def test_fallback_escaper_matches_markupsafe() -> None:
    from markupsafe import escape

    from newsletter.render.qp import _translate_escape

    for text in ["plain", "<a href='x'>&amp;\"</a>", "é & ü", ""]:
        assert _translate_escape(text) == str(escape(text))


@pytest.mark.parametrize("seed", range(25))
def test_random_field_values_always_give_valid_short_line_qp(seed, settings, digest) -> None:
    """Unicode, '=', control characters, trailing blanks and very long values in every field."""
    rng = random.Random(seed)
    alphabet = "aé= \t\n<>&\"'“€😀\x01x" + "y" * 5

    def junk(limit: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, limit)))

    data = fixture_input(name=junk(40))
    for section in data["sections"]:
        section["title"] = junk(30)
        for slot in section["slots"]:
            slot["item"]["title"] = junk(200)
            slot["item"]["summary"] = junk(600)
            slot["reason"]["text"] = junk(120)
            slot["item"]["url"] += "&q=" + "".join(rng.choice("ab=%é") for _ in range(40))
    rendered = render_message(
        digest, build_context(data, settings=settings), settings=settings, now=NOW
    )
    body = rendered.bytes.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    message = email.message_from_bytes(rendered.bytes, policy=policy.default)
    assert all(not part.defects for part in message.walk())
    html = message.get_body(("html",)).get_content()
    first = data["sections"][0]["slots"][0]["item"]["title"]
    escaped = first.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = escaped.replace('"', "&#34;").replace("'", "&#39;")
    assert escaped.replace("\r\n", "\n").replace("\r", "\n").split("\n")[0] in html
