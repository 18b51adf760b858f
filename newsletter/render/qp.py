"""Quoted-printable at compile time: the HTML template renders straight to QP-encoded text.

Encoding ~50 KB of MJML output to quoted-printable for every message costs more than all the
rest of rendering together, yet almost all of it is static. So ``prepare_html`` rewrites the
compiled HTML's Jinja source once per template version:

* every static chunk is QP-encoded in advance and ends on a line break (soft ``=\\r\\n`` when it
  did not end on a newline), so whatever follows starts at column 0;
* every ``{{ expression }}`` output is HTML-escaped and QP-encoded by the environment's
  ``finalize`` hook (``qp_value``), again ending on a line break (Jinja's autoescape is off in
  this environment because the hook escapes; ``Markup`` values such as ``|safe`` pass as is);
* every ``href`` becomes ``{{ (...)|tracked }}`` (a signed click URL per message) and an open
  pixel and the hidden honeypot link (``display:none``, ``aria-hidden``, ``mso-hide:all``:
  invisible to people and screen readers; link scanners follow it) are added before
  ``</body>``.

Any concatenation of such pieces is valid quoted-printable with lines of at most 76 octets, so
rendering the template yields the final ``Content-Transfer-Encoding: quoted-printable`` body;
``decode`` gives the plain HTML back (preview, view in browser, tests).
"""

from __future__ import annotations

import binascii
import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from markupsafe import Markup

from newsletter.render.links import LinkRewriter

MAX_LINE = 76
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"})
_JINJA = re.compile(r"(\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})", re.DOTALL)
_HREF = re.compile(r"""(href=)(["'])(.*?)\2""", re.DOTALL)
_EXPR = re.compile(r"\{\{-?(.*?)-?\}\}", re.DOTALL)
PIXEL_VAR = "_nl_pixel"
HONEYPOT_VAR = "_nl_honeypot"


def _translate_escape(text: str) -> str:
    """HTML-escape like markupsafe (& < > " ')."""
    return text.translate(_ESCAPES)


try:  # markupsafe's C escaper (same output, ~10x faster); fall back to str.translate
    from markupsafe._speedups import _escape_inner as _escape
except ImportError:  # pragma: no cover - pure-Python markupsafe
    _escape = _translate_escape


def _wrap(line: str, limit: int) -> str:
    """Soft-break a line into pieces of at most ``limit`` octets without cutting an escape."""
    pieces = []
    while len(line) > limit:
        cut = limit - 2  # leaves room for the '=' and never splits "=XX"
        if line[cut - 1] == "=":
            cut -= 1
        elif line[cut - 2] == "=":
            cut -= 2
        pieces.append(line[:cut])
        line = line[cut:]
    pieces.append(line)
    return "=\r\n".join(pieces)


def _rewrap(encoded: str) -> str:
    """Enforce 76 octets per line (b2a_qp can exceed it when it encodes trailing whitespace)
    and 75 on the last line, which gets a soft break appended."""
    lines = encoded.split("\r\n")
    if max(map(len, lines)) < MAX_LINE:
        return encoded
    last = len(lines) - 1
    return "\r\n".join(
        _wrap(line, MAX_LINE - 1 if i == last else MAX_LINE) if len(line) > MAX_LINE - 1 else line
        for i, line in enumerate(lines)
    )


def qp_chunk(text: str) -> str:
    """QP-encode text (UTF-8, CRLF) so that it ends on a line break: hard if it ended on a
    newline, else a soft ``=\r\n``. Lines never exceed 76 octets."""
    if not text:
        return ""
    body = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    encoded = binascii.b2a_qp(body, istext=True, header=False).decode("ascii")
    encoded = _rewrap(encoded.replace("\n", "\r\n"))
    return encoded if encoded.endswith("\r\n") else encoded + "=\r\n"


def qp_value(value: Any) -> str:
    """Jinja ``finalize`` for QP HTML: HTML-escape the value (unless Markup), then QP-encode.

    The QP environment has Jinja's own autoescape off (this hook escapes instead), which saves
    two Markup round trips per expression; macros and block ``set`` are refused by the linter.
    Printable ASCII without ``=`` (most values, and every tracked URL) is cut into 75-octet
    soft-broken lines by slicing; anything else goes through ``binascii.b2a_qp``.
    """
    if type(value) is str:
        text = _escape(value)
    elif isinstance(value, Markup):
        text = str(value)
    else:
        text = _escape(str(value))
    if not text:
        return ""
    if "=" not in text and text.isascii() and text.isprintable():
        if len(text) < MAX_LINE:
            return text + "=\r\n"
        step = MAX_LINE - 1
        return "=\r\n".join([text[i : i + step] for i in range(0, len(text), step)]) + "=\r\n"
    return qp_chunk(text)


# The message's link signer while its HTML renders. It lives here, not in the render context,
# so no template can reach it (it holds the secret key) whatever it tries.
_REWRITER: ContextVar[LinkRewriter | None] = ContextVar("newsletter_link_rewriter", default=None)


@contextmanager
def signing_links(rewriter: LinkRewriter) -> Iterator[None]:
    """Let ``|tracked`` sign this message's links inside the block."""
    token = _REWRITER.set(rewriter)
    try:
        yield
    finally:
        _REWRITER.reset(token)


def tracked(url: Any) -> str:
    """Jinja filter: the signed click URL for ``url`` in this message (or ``url`` outside one)."""
    rewriter = _REWRITER.get()
    text = "" if url is None else str(url)
    return text if rewriter is None else rewriter(text)


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _track_href(match: re.Match[str]) -> str:
    """``href="a{{ x }}b"`` -> ``href="{{ ('a' ~ (x) ~ 'b')|tracked }}"`` (literals unescaped)."""
    value = match.group(3)
    if "{%" in value or not value.strip() or value.startswith("#"):
        return match.group(0)
    parts, pos = [], 0
    for expr in _EXPR.finditer(value):
        if expr.start() > pos:
            parts.append(_literal(html.unescape(value[pos : expr.start()])))
        parts.append(f"({expr.group(1).strip()})")
        pos = expr.end()
    if pos < len(value):
        parts.append(_literal(html.unescape(value[pos:])))
    joined = parts[0] if len(parts) == 1 else "(" + " ~ ".join(parts) + ")"
    return f"{match.group(1)}{match.group(2)}{{{{ {joined}|tracked }}}}{match.group(2)}"


def _strip_whitespace_control(source: str) -> str:
    """Apply ``{%-``/``-%}`` trimming now, so it cannot eat the line breaks added later."""
    source = re.sub(r"\s*(\{[{%#])-", r"\1", source)
    return re.sub(r"-([}%#]\})\s*", r"\1", source)


HONEYPOT = (
    '<div aria-hidden="true" style="display:none;max-height:0;overflow:hidden;mso-hide:all;">'
    f'<a href="{{{{ {HONEYPOT_VAR} }}}}" tabindex="-1" aria-hidden="true" '
    'style="display:none;font-size:0;line-height:0;color:transparent;">&#8203;</a></div>'
)
"""The hidden link of every HTML part; the text part never has it."""


def add_pixel(source: str) -> str:
    """Insert the open pixel (a 1x1 image at ``{{ _nl_pixel }}``) and the hidden honeypot link
    (``{{ _nl_honeypot }}``) before ``</body>``."""
    pixel = (
        f'<img src="{{{{ {PIXEL_VAR} }}}}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0;" />'
    ) + HONEYPOT
    at = source.rfind("</body>")
    return source[:at] + pixel + source[at:] if at >= 0 else source + pixel


def prepare_html(compiled_html: str) -> str:
    """Turn compiled HTML (Jinja inside) into a Jinja source that renders QP-encoded HTML."""
    source = add_pixel(_HREF.sub(_track_href, _strip_whitespace_control(compiled_html)))
    pieces = _JINJA.split(source)
    out = []
    for index, piece in enumerate(pieces):
        out.append(piece if index % 2 else qp_chunk(piece))
    return "".join(out)


def decode(encoded: str) -> str:
    """The plain HTML of a QP-encoded body (CRLF line ends)."""
    return binascii.a2b_qp(encoded.encode("ascii")).decode("utf-8")
