"""Quoted-printable at compile time: the HTML template renders straight to QP-encoded text.

Encoding ~50 KB of MJML output to quoted-printable for every message costs more than all the
rest of rendering together, yet almost all of it is static. So ``prepare_html`` rewrites the
compiled HTML's Jinja source once per template version:

* every static chunk is QP-encoded in advance and ends on a line break (soft ``=\\r\\n`` when it
  did not end on a newline), so whatever follows starts at column 0;
* every ``{{ expression }}`` output is HTML-escaped and QP-encoded by the environment's
  ``finalize`` hook (``qp_value``), again ending on a line break;
* every ``href`` becomes ``{{ (...)|tracked }}`` (a signed click URL per message) and an open
  pixel is added before ``</body>``.

Any concatenation of such pieces is valid quoted-printable with lines of at most 76 octets, so
rendering the template yields the final ``Content-Transfer-Encoding: quoted-printable`` body;
``decode`` gives the plain HTML back (preview, view in browser, tests).
"""

from __future__ import annotations

import binascii
import html
import re
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from newsletter.render.links import LinkRewriter

MAX_LINE = 76
_SPECIAL = re.compile(r"[&<>\"']").search
_JINJA = re.compile(r"(\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})", re.DOTALL)
_HREF = re.compile(r"""(href=)(["'])(.*?)\2""", re.DOTALL)
_EXPR = re.compile(r"\{\{-?(.*?)-?\}\}", re.DOTALL)
PIXEL_VAR = "_nl_pixel"
LINKS_VAR = "_nl_links"


def _wrap_last_line(encoded: str) -> str:
    """Split a final line longer than 75 octets (room for the '=') without cutting an escape."""
    head, sep, last = encoded.rpartition("\r\n")
    prefix = head + sep
    pieces = []
    while len(last) > MAX_LINE - 1:
        cut = MAX_LINE - 3
        if last[cut - 1] == "=":
            cut -= 1
        elif last[cut - 2] == "=":
            cut -= 2
        pieces.append(last[:cut])
        last = last[cut:]
    pieces.append(last)
    return prefix + "=\r\n".join(pieces)


def qp_chunk(text: str) -> str:
    """QP-encode text (UTF-8, CRLF) so that it ends on a line break: hard if it ended on a
    newline, else a soft ``=\\r\\n``. Lines never exceed 76 octets."""
    if not text:
        return ""
    body = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    encoded = binascii.b2a_qp(body, istext=True, header=False).decode("ascii")
    encoded = encoded.replace("\n", "\r\n")
    if encoded.endswith("\r\n"):
        return encoded
    return _wrap_last_line(encoded) + "=\r\n"


def qp_value(value: Any) -> Markup:
    """Jinja ``finalize`` for QP HTML: escape the value (unless Markup), then QP-encode it."""
    if type(value) is str:
        text = str(escape(value)) if _SPECIAL(value) else value
    else:
        text = str(value) if isinstance(value, Markup) else str(escape(value))
    if not text:
        return Markup("")
    short = len(text) < MAX_LINE - 2 and text[-1] != " "
    if short and text.isascii() and text.isprintable() and "=" not in text:
        return Markup(text + "=\r\n")
    return Markup(qp_chunk(text))


@pass_context
def tracked(context: Context, url: Any) -> str:
    """Jinja filter: the signed click URL for ``url`` in this message (or ``url`` outside one)."""
    rewriter: LinkRewriter | None = context.get(LINKS_VAR)
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


def add_pixel(source: str) -> str:
    """Insert the open pixel (a 1x1 image at ``{{ _nl_pixel }}``) before ``</body>``."""
    pixel = (
        f'<img src="{{{{ {PIXEL_VAR} }}}}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0;" />'
    )
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
