"""Items and subscribers with the optional fields left out render clean emails: a card without
an image has no image (never ``<img src="None">``), and no ``None`` is ever shown."""

from __future__ import annotations

import email
import re
from email import policy

import pytest

from newsletter.render.compile import CompiledTemplate
from newsletter.render.context import build_context
from newsletter.render.fixtures import FIXTURE_NOW, fixture_input
from newsletter.render.render import render_message


def _bare(kind: str, *, images: str) -> dict:
    """The fixture with no summary, topics, name or anchors; images none, some or all."""
    data = fixture_input(kind=kind, name="")
    data["subscriber"]["attributes"] = {}
    data["campaign"]["display_name"] = None
    for section in data["sections"]:
        for slot in section["slots"]:
            item = slot["item"]
            keep = images == "all" or (images == "some" and slot["position"] % 2 == 0)
            item["image_url"] = item["image_url"] if keep else None
            item["summary"], item["topics"] = None, None
            slot["reason"]["anchor"] = None
    return data


@pytest.mark.parametrize("images", ["none", "some", "all"])
@pytest.mark.parametrize("kind", ["digest", "trigger"])
def test_optional_fields_left_out_render_clean(
    kind: str, images: str, digest: CompiledTemplate, trigger: CompiledTemplate, settings
) -> None:
    data = _bare(kind, images=images)
    compiled = digest if kind == "digest" else trigger
    context = build_context(data, settings=settings)
    rendered = render_message(compiled, context, settings=settings, now=FIXTURE_NOW)
    parsed = email.message_from_bytes(rendered.bytes, policy=policy.default)
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    images_shown = re.findall(r'<img[^>]+src="(https://images\.example\.com/[^"]+)"', html)
    expected = {"none": 0, "some": 4, "all": 8}[images]
    assert len(images_shown) == expected
    assert 'src="None"' not in html and 'src=""' not in html
    visible = re.sub(r"<[^>]+>", " ", re.sub(r"(?s)<(style|head)\b.*?</\1>", " ", html))
    for part in (visible, text, rendered.subject, rendered.preheader):
        assert not re.search(r"\bNone\b", part), part[:200]
    assert "Hi there" in text  # no name: a greeting without one
    assert "Weekly read" in text  # no display name: the campaign name made readable
