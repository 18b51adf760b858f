"""Tracking and account URLs for one message, and the rewriting of links in rendered parts.

URL shapes (the web endpoints verify the tokens with ``newsletter.tokens``):

    {base_url}/t/c/{token}        click: redirects to the signed destination
    {base_url}/t/o/{token}.gif    open pixel
    {base_url}/u/{token}          unsubscribe page (GET confirms, POST = RFC 8058 one-click)
    {base_url}/p/{token}          preferences
    {base_url}/v/{token}          view in browser
    {base_url}/t/h/{token}        the hidden honeypot link (only machines follow it)

``MessageLinks(base_url=..., secret_key=..., message_id=...)`` builds them for one message;
``rewrite_html_links`` / ``rewrite_text_links`` turn every external http(s) link of a rendered
part into a signed click link, attributing it to the slot whose item has that URL.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass

from newsletter import tokens

ALLOWED_SCHEMES = ("https", "http", "mailto")
_TEXT_URL = re.compile(r"https?://[^\s<>\"')\]]+", re.IGNORECASE)
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_INVISIBLE = re.compile(r"[\t\n\r]")


def click_url(*, base_url: str, token: str) -> str:
    """The click-redirect URL for a click token."""
    return f"{base_url.rstrip('/')}/t/c/{token}"


def open_pixel_url(*, base_url: str, token: str) -> str:
    """The open-pixel URL for an open token."""
    return f"{base_url.rstrip('/')}/t/o/{token}.gif"


def unsubscribe_url(*, base_url: str, token: str) -> str:
    """The unsubscribe page (GET) and one-click endpoint (POST) for an unsubscribe token."""
    return f"{base_url.rstrip('/')}/u/{token}"


def preferences_url(*, base_url: str, token: str) -> str:
    """The preferences page for a preferences token."""
    return f"{base_url.rstrip('/')}/p/{token}"


def view_url(*, base_url: str, token: str) -> str:
    """The view-in-browser page for a view token."""
    return f"{base_url.rstrip('/')}/v/{token}"


def honeypot_url(*, base_url: str, token: str) -> str:
    """The hidden honeypot link for a honeypot token."""
    return f"{base_url.rstrip('/')}/t/h/{token}"


def browser_url(url: str) -> str:
    """`url` as a browser reads it: tabs and line breaks dropped wherever they are, leading and
    trailing spaces and control characters stripped (WHATWG URL), so ``java\tscript:`` is
    ``javascript:``. Decode HTML entities first (``html.unescape``) when it comes from markup."""
    return _INVISIBLE.sub("", url).strip("".join(map(chr, range(33))))


def url_scheme(url: str) -> str | None:
    """The lower-cased scheme of a URL as a browser reads it, or None when it is relative."""
    match = _SCHEME.match(browser_url(url))
    return match.group(1).lower() if match else None


def is_scheme_relative(url: str) -> bool:
    """True for ``//host/path`` (and ``\\host``, ``/\\host``): another host, our scheme."""
    return browser_url(url)[:2] in ("//", "\\\\", "/\\", "\\/")


def is_allowed_url(url: str) -> bool:
    """True for https, http and mailto URLs (the only schemes a message may link to)."""
    return url_scheme(url) in ALLOWED_SCHEMES


@dataclass(frozen=True, slots=True)
class MessageLinks:
    """Signs the tracking and account URLs of one message."""

    base_url: str
    secret_key: str
    message_id: int | str

    def click(self, url: str, slot: int | None) -> str:
        """A signed click URL that redirects to ``url`` and credits ``slot``."""
        token = tokens.sign_click(
            secret_key=self.secret_key, message_id=self.message_id, slot=slot, url=url
        )
        return click_url(base_url=self.base_url, token=token)

    def open_pixel(self) -> str:
        """The open-pixel URL."""
        token = tokens.sign_open(secret_key=self.secret_key, message_id=self.message_id)
        return open_pixel_url(base_url=self.base_url, token=token)

    def unsubscribe(self) -> str:
        """The unsubscribe URL (also the List-Unsubscribe https target)."""
        token = tokens.sign_unsubscribe(secret_key=self.secret_key, message_id=self.message_id)
        return unsubscribe_url(base_url=self.base_url, token=token)

    def preferences(self) -> str:
        """The preferences URL."""
        token = tokens.sign_preferences(secret_key=self.secret_key, message_id=self.message_id)
        return preferences_url(base_url=self.base_url, token=token)

    def view(self) -> str:
        """The view-in-browser URL."""
        token = tokens.sign_view(secret_key=self.secret_key, message_id=self.message_id)
        return view_url(base_url=self.base_url, token=token)

    def honeypot(self) -> str:
        """The hidden link no person sees; a hit on it marks the message's burst machine."""
        token = tokens.sign_honeypot(secret_key=self.secret_key, message_id=self.message_id)
        return honeypot_url(base_url=self.base_url, token=token)

    def is_own(self, url: str) -> bool:
        """True when ``url`` already points at our own endpoints (left as is)."""
        return url.startswith(self.base_url.rstrip("/") + "/")


def rewrite_url(url: str, *, links: MessageLinks, slots: Mapping[str, int]) -> str:
    """The URL a message links to instead of ``url``: a signed click URL for external http(s),
    ``url`` itself for our own endpoints, mailto and relative links, ``#`` for other schemes
    and for scheme-relative links (``//evil.example/x``), judged as a browser reads the URL."""
    url = browser_url(url)
    scheme = url_scheme(url)
    if scheme in ("http", "https") and not links.is_own(url):
        return links.click(url, slots.get(url))
    if scheme in ALLOWED_SCHEMES or (scheme is None and not is_scheme_relative(url)):
        return url
    return "#"


class LinkRewriter:
    """Per-message memo of ``rewrite_url``: a URL linked three times is signed once."""

    __slots__ = ("_done", "links", "slots")

    def __init__(self, links: MessageLinks, slots: Mapping[str, int]) -> None:
        self.links, self.slots = links, slots
        self._done: dict[str, str] = {}

    def __call__(self, url: str) -> str:
        """The rewritten URL (see ``rewrite_url``)."""
        new = self._done.get(url)
        if new is None:
            new = self._done[url] = rewrite_url(url, links=self.links, slots=self.slots)
        return new


def _rewrite_one(raw: str, links: MessageLinks, slots: Mapping[str, int]) -> str:
    url = html.unescape(raw).strip()
    new = rewrite_url(url, links=links, slots=slots)
    return raw if new == url else new


def rewrite_html_links(html_text: str, *, links: MessageLinks, slots: Mapping[str, int]) -> str:
    """Replace every external http(s) ``href`` with a signed click URL; neuter bad schemes.

    ``slots`` maps an item URL to its slot position, so a click is credited to that slot.
    Links with a scheme other than https/http/mailto (``javascript:``, ``data:``) become ``#``.
    Splitting on the literal ``href=`` is ~30x faster than a regex over 50 KB of MJML output.
    """
    parts = html_text.split("href=")
    out, done = [parts[0]], dict[str, str]()
    for part in parts[1:]:
        quote = part[:1]
        end = part.find(quote, 1) if quote in ('"', "'") else -1
        if end < 0:
            out.append("href=" + part)
            continue
        raw = part[1:end]
        new = done.get(raw)
        if new is None:
            new = done[raw] = _rewrite_one(raw, links, slots)
        out.append(f"href={quote}{new}{part[end:]}")
    return "".join(out)


def rewrite_text_links(text: str, *, rewriter: LinkRewriter) -> str:
    """Replace every external http(s) URL in a text part with a signed click URL."""

    def replace(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(".,;:!?")
        return rewriter(url) + match.group(0)[len(url) :]

    return _TEXT_URL.sub(replace, text)
