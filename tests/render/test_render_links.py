"""Link rewriting: external http(s) becomes a signed click URL, bad schemes are neutered."""

from __future__ import annotations

from newsletter import tokens
from newsletter.render.links import (
    LinkRewriter,
    MessageLinks,
    is_allowed_url,
    rewrite_html_links,
    rewrite_text_links,
    rewrite_url,
)

LINKS = MessageLinks(base_url="https://n.example/", secret_key="k" * 20, message_id=77)
SLOTS = {"https://shop.example/a?x=1&y=2": 4}


def _click(url: str) -> tokens.TokenPayload:
    assert url.startswith("https://n.example/t/c/")
    return tokens.verify_click(url.rsplit("/", 1)[1], secret_key="k" * 20)


def test_external_links_become_click_urls_credited_to_their_slot() -> None:
    payload = _click(rewrite_url("https://shop.example/a?x=1&y=2", links=LINKS, slots=SLOTS))
    assert (payload.message_id, payload.slot, payload.url) == (
        77,
        4,
        "https://shop.example/a?x=1&y=2",
    )
    assert _click(rewrite_url("http://other.example/", links=LINKS, slots=SLOTS)).slot is None


def test_own_mailto_relative_and_bad_schemes() -> None:
    own = "https://n.example/u/abc"
    assert rewrite_url(own, links=LINKS, slots=SLOTS) == own
    assert rewrite_url("mailto:a@b.c", links=LINKS, slots=SLOTS) == "mailto:a@b.c"
    assert rewrite_url("#top", links=LINKS, slots=SLOTS) == "#top"
    assert rewrite_url(" javascript:alert(1)", links=LINKS, slots=SLOTS) == "#"
    assert rewrite_url("data:text/html,x", links=LINKS, slots=SLOTS) == "#"
    assert not is_allowed_url("JaVaScRiPt:x") and is_allowed_url("HTTPS://x")


def test_html_rewriting_unescapes_attribute_values() -> None:
    html = "<a href=\"https://shop.example/a?x=1&amp;y=2\">A</a> <a href='mailto:a@b.c'>m</a>"
    out = rewrite_html_links(html, links=LINKS, slots=SLOTS)
    href = out.split('"')[1]
    assert _click(href).slot == 4
    assert "href='mailto:a@b.c'" in out


def test_text_rewriting_keeps_trailing_punctuation_and_signs_once() -> None:
    rewriter = LinkRewriter(LINKS, SLOTS)
    text = "See https://shop.example/a?x=1&y=2. Again: https://shop.example/a?x=1&y=2\n"
    out = rewrite_text_links(text, rewriter=rewriter)
    urls = [word.rstrip(".") for word in out.split() if word.startswith("https://")]
    assert len(urls) == 2 and urls[0] == urls[1]
    assert _click(urls[0]).url == "https://shop.example/a?x=1&y=2"
    assert out.split()[1].endswith(".")
