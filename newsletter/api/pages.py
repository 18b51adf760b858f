"""The small HTML pages and the pixel the tracking service answers with (no external assets).

Pages are Jinja templates with autoescape on, served with headers that keep the token out of
caches, referrers and search engines, and forbid scripts.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse, Response
from jinja2 import DictLoader, Environment, select_autoescape

# A 1x1 transparent GIF (GIF89a, one transparent colour), 43 bytes.
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
PAGE_HEADERS = {
    **NO_CACHE,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
# The view-in-browser page shows the email as sent: its images load, scripts never run.
VIEW_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": "script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
}

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{{ title }}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34em;margin:3em auto;padding:0 1em;
color:#222}button{font:inherit;padding:.5em 1.2em;cursor:pointer}fieldset{border:1px solid #ccc;
margin:1em 0}.error{color:#a00}.note{color:#555}</style></head>
<body><h1>{{ title }}</h1>{% block body %}{% endblock %}</body></html>"""

_TEMPLATES = {
    "layout.html": _LAYOUT,
    "message.html": """{% extends "layout.html" %}{% block body %}
<p{% if error %} class="error"{% endif %}>{{ text }}</p>{% endblock %}""",
    "unsubscribe.html": """{% extends "layout.html" %}{% block body %}
<p>Do you want to stop receiving these emails?</p>
<form method="post">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form>
<p class="note">Nothing changes until you press the button.</p>{% endblock %}""",
    "preferences.html": """{% extends "layout.html" %}{% block body %}
{% if saved %}<p>Your preferences are saved.</p>{% endif %}
{% if error %}<p class="error">{{ error }}</p>{% endif %}
<p>Preferences for <strong>{{ prefs.email }}</strong></p>
<form method="post">
<input type="hidden" name="csrf" value="{{ csrf }}">
<fieldset><legend>How often</legend>
{% for value in frequencies %}<label><input type="radio" name="frequency" value="{{ value }}"
{% if value == prefs.frequency %} checked{% endif %}> {{ value }}</label><br>{% endfor %}
</fieldset>
<fieldset><legend>Topics</legend>
{% for topic in prefs.known_topics %}<label><input type="checkbox" name="topics"
value="{{ topic }}"{% if topic in prefs.topics %} checked{% endif %}> {{ topic }}</label><br>
{% else %}<span class="note">No topics yet.</span>{% endfor %}
</fieldset>
<button type="submit">Save</button></form>{% endblock %}""",
}

_ENV = Environment(
    loader=DictLoader(_TEMPLATES), autoescape=select_autoescape(default=True), auto_reload=False
)


def page(template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render one page template (autoescaped) with the no-cache, no-referrer headers."""
    html = _ENV.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def message(title: str, text: str, *, status: int = 200) -> HTMLResponse:
    """A page with a heading and one sentence."""
    return page("message.html", status=status, title=title, text=text, error=status >= 400)


def broken_link() -> HTMLResponse:
    """400: the token did not verify (names nothing secret, redirects nowhere)."""
    return message(
        "This link is broken",
        "The link may have been cut off or changed. Try the link in the original email again.",
        status=400,
    )


def forbidden(text: str) -> HTMLResponse:
    """403: a form that was not sent from its own page (another site, an old copy)."""
    return message("This form can't be used", text, status=403)


def not_unsubscribe_request() -> HTMLResponse:
    """400: a POST to /u/ whose body is not RFC 8058's ``List-Unsubscribe=One-Click``."""
    return message(
        "Nothing changed",
        "This is not an unsubscribe request. Use the button on the unsubscribe page.",
        status=400,
    )


def not_found() -> HTMLResponse:
    """404: the token is fine but its message no longer exists."""
    return message(
        "We can't find this email",
        "It may have been removed. Reply to the email if you need help.",
        status=404,
    )


def server_error() -> HTMLResponse:
    """500/503: something failed on our side (details go to the log, not the page)."""
    return message("Something went wrong", "Please try again in a few minutes.", status=503)


def pixel() -> Response:
    """The 1x1 transparent GIF, never cached (every open reaches us)."""
    return Response(PIXEL_GIF, media_type="image/gif", headers=NO_CACHE)


def view(html: str) -> HTMLResponse:
    """The re-rendered email, with a CSP that lets images load and stops scripts."""
    return HTMLResponse(html, headers=VIEW_HEADERS)
