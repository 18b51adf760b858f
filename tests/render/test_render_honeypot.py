"""Every rendered message carries one hidden honeypot link in its HTML part, none in its text."""

from __future__ import annotations

import re

from newsletter import tokens
from newsletter.render.fixtures import render_fixture


def test_the_honeypot_is_in_the_html_part_only_hidden_and_signed(digest, settings) -> None:
    rendered = render_fixture(digest, settings)
    links = re.findall(r'<a href="([^"]*/t/h/[^"]*)"[^>]*>', rendered.html)
    assert len(links) == 1
    token = links[0].rsplit("/", 1)[1]
    assert tokens.verify_honeypot(token, secret_key=settings.secret_key).message_id == 1
    block = rendered.html[rendered.html.index("/t/h/") - 200 : rendered.html.index("/t/h/") + 400]
    assert 'aria-hidden="true"' in block and "display:none" in block and "mso-hide:all" in block
    assert 'tabindex="-1"' in block
    assert "/t/h/" not in rendered.text  # people reading the text part never meet it
    assert b"/t/h/" not in rendered.bytes.split(b"text/html")[0]  # nor does the text part's QP
