"""Tell machine opens and scanner clicks from human ones, so reports and learning can skip them.

Pure functions over (user agent, IP, send time, event time); no database, no clock. Machine
events are kept and flagged (``is_machine`` + ``machine_reason``), never dropped.

Open heuristics (``classify_open``), first match wins:

1. Google's image proxy (``GoogleImageProxy``) fetches the pixel when the reader opens the
   message in Gmail, so it is **human**, reason ``gmail-proxy`` (likewise ``yahoo-proxy``).
2. An empty user agent is a machine (``empty-user-agent``): every mail client sends one.
3. Apple Mail Privacy Protection prefetches every image through Apple's proxy when the message
   is delivered, read or not. The proxy sends the bare user agent ``Mozilla/5.0``; it egresses
   from Apple's 17.0.0.0/8 among others. So: user agent exactly ``Mozilla/5.0`` -> machine
   ``apple-mpp``; an IP in 17.0.0.0/8 whose user agent names no mail client or browser engine
   -> machine ``apple-mpp``. (An Apple employee reading in Mail keeps a full WebKit user agent
   and stays human.)
4. Link scanners, security gateways and HTTP libraries (``SCANNER_AGENTS``, ``BOT_AGENTS``)
   also fetch images -> machine ``scanner:<name>`` / ``bot:<name>``.

Open timing is not used: a reader with a push notification opens within seconds of delivery.

Click heuristics (``classify_click``; ``click_signals`` lists every one that holds), first
match wins:

1. Empty user agent -> ``empty-user-agent``.
2. A ``HEAD`` request -> ``head-request`` (browsers GET a link; link checkers probe with HEAD).
3. A prefetch or preview request (``Purpose: prefetch``, ``Sec-Purpose: prefetch|prerender``,
   ``X-Purpose: preview``, ``X-Moz: prefetch``) -> ``prefetch``: nobody clicked.
4. Security gateways and link scanners (Barracuda, Proofpoint, Mimecast, ...) -> ``scanner:<name>``.
5. An IP in a security vendor's published scanning range (``SCANNER_NETWORKS``) ->
   ``scanner-ip:<vendor>``.
6. Microsoft Office's link preflight (``Microsoft Office`` / ``ms-office`` with no browser token;
   SafeLinks and Office apps check a link before the browser opens it) -> ``office-preflight``.
7. Crawlers, headless browsers and HTTP libraries (bot, crawler, curl, python-requests,
   HeadlessChrome, ...) -> ``bot:<name>``.
8. A click less than ``FAST_CLICK_SECONDS`` (10 s) after the message was sent -> ``too-fast``:
   gateways click every link on arrival; people do not read and click that fast.

These look at one request. Scanners that send a browser's user agent from an ordinary address
are caught by what they do to the whole message (``newsletter.track.bursts``: the hidden
honeypot link, many links within seconds, an early click before any human-looking open).

Everything else is human (reason ``None``, or ``gmail-proxy`` / ``yahoo-proxy`` for opens).
The pattern lists are lower-case substrings of the user agent; extend them as new scanners show up.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import datetime

FAST_CLICK_SECONDS = 10.0
APPLE_MPP_AGENT = "Mozilla/5.0"
APPLE_NETWORKS = (ipaddress.IPv4Network("17.0.0.0/8"),)

HUMAN_PROXIES: tuple[tuple[str, str], ...] = (
    ("googleimageproxy", "gmail-proxy"),  # Gmail fetches images when the reader opens
    ("yahoomailproxy", "yahoo-proxy"),  # Yahoo Mail likewise
)
"""(substring, reason): image proxies that fetch on a human open."""

SCANNER_AGENTS: tuple[tuple[str, str], ...] = (
    ("barracuda", "scanner:barracuda"),
    ("proofpoint", "scanner:proofpoint"),
    ("mimecast", "scanner:mimecast"),
    ("safelinks", "scanner:safelinks"),
    ("ironport", "scanner:ironport"),
    ("symantec", "scanner:symantec"),
    ("messagelabs", "scanner:symantec"),
    ("forcepoint", "scanner:forcepoint"),
    ("trendmicro", "scanner:trendmicro"),
    ("trend micro", "scanner:trendmicro"),
    ("sophos", "scanner:sophos"),
    ("zscaler", "scanner:zscaler"),
    ("fortiguard", "scanner:fortinet"),
    ("fireeye", "scanner:fireeye"),
    ("avanan", "scanner:avanan"),
    ("checkpoint", "scanner:checkpoint"),
    ("spamtitan", "scanner:spamtitan"),
)
"""(substring, reason): email security gateways that fetch every link and image."""

BOT_AGENTS: tuple[tuple[str, str], ...] = (
    ("headlesschrome", "bot:headless-chrome"),
    ("phantomjs", "bot:phantomjs"),
    ("python-requests", "bot:python-requests"),
    ("python-urllib", "bot:python-urllib"),
    ("python-httpx", "bot:python-httpx"),
    ("aiohttp", "bot:aiohttp"),
    ("curl/", "bot:curl"),
    ("wget/", "bot:wget"),
    ("go-http-client", "bot:go-http-client"),
    ("java/", "bot:java"),
    ("libwww-perl", "bot:libwww-perl"),
    ("apache-httpclient", "bot:apache-httpclient"),
    ("node-fetch", "bot:node-fetch"),
    ("axios/", "bot:axios"),
    ("facebookexternalhit", "bot:link-preview"),
    ("skypeuripreview", "bot:link-preview"),
    ("whatsapp/", "bot:link-preview"),
    ("crawler", "bot:crawler"),
    ("spider", "bot:spider"),
    ("+http", "bot:crawler"),  # crawlers name their info page: "(compatible; X/1.0; +https://...)"
    ("bot/", "bot:bot"),  # Googlebot/2.1, bingbot/2.0, Twitterbot/1.0 ("bot/" spares CUBOT phones)
    ("bot-", "bot:bot"),  # Slackbot-LinkExpanding
)
"""(substring, reason): crawlers, link unfurlers, headless browsers and HTTP libraries."""

SCANNER_NETWORKS: tuple[tuple[str, str], ...] = (
    ("64.235.144.0/20", "barracuda"),
    ("209.222.80.0/21", "barracuda"),
    ("205.139.110.0/24", "mimecast"),
    ("207.211.30.0/24", "mimecast"),
    ("148.163.128.0/19", "proofpoint"),
    ("67.231.144.0/20", "proofpoint"),
)
"""(network, vendor): email security vendors' published scanning/egress ranges; extend as needed."""
_SCANNER_NETS = tuple((ipaddress.ip_network(n), v) for n, v in SCANNER_NETWORKS)
PREFETCH_HEADERS: dict[str, tuple[str, ...]] = {
    "purpose": ("prefetch", "preview"),
    "sec-purpose": ("prefetch", "prerender"),
    "x-purpose": ("preview", "prefetch"),
    "x-moz": ("prefetch",),
}

OFFICE_AGENTS = ("microsoft office", "ms-office", "microsoft outlook")
BROWSER_TOKENS = ("chrome/", "firefox/", "safari/", "edg/", "opr/", "applewebkit", "gecko/")
MAIL_CLIENT_TOKENS = (*BROWSER_TOKENS, "thunderbird", "outlook", "android", "iphone", "ipad")

Verdict = tuple[bool, str | None]


def _match(agent: str, patterns: tuple[tuple[str, str], ...]) -> str | None:
    """The reason of the first pattern found in the lower-cased user agent, or None."""
    for needle, reason in patterns:
        if needle in agent:
            return reason
    return None


def _in_networks(ip: str | None, networks: tuple[ipaddress.IPv4Network, ...]) -> bool:
    """True when ``ip`` parses and lies in one of ``networks`` (IPv4-mapped IPv6 included)."""
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _address(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def scanner_network(ip: str | None) -> str | None:
    """The vendor whose scanning range ``ip`` lies in (``SCANNER_NETWORKS``), or None."""
    address = _address(ip)
    if address is None:
        return None
    for network, vendor in _SCANNER_NETS:
        if address.version == network.version and address in network:
            return vendor
    return None


def is_prefetch(headers: Mapping[str, str]) -> bool:
    """True when the request says it is a prefetch or a preview (``PREFETCH_HEADERS``)."""
    for name, values in PREFETCH_HEADERS.items():
        value = (headers.get(name) or "").lower()
        if value and any(v in value for v in values):
            return True
    return False


def _automated(agent: str) -> str | None:
    """The scanner or bot reason of a lower-cased user agent, or None."""
    return _match(agent, SCANNER_AGENTS) or _match(agent, BOT_AGENTS)


def is_apple_mpp(user_agent: str | None, ip: str | None) -> bool:
    """True for an Apple Mail Privacy Protection prefetch (bare agent, or Apple IP + no client)."""
    agent = (user_agent or "").strip()
    if agent == APPLE_MPP_AGENT:
        return True
    lowered = agent.lower()
    has_client = any(token in lowered for token in MAIL_CLIENT_TOKENS)
    return _in_networks(ip, APPLE_NETWORKS) and not has_client


def classify_open(
    user_agent: str | None, ip: str | None, sent_at: datetime | None, occurred_at: datetime
) -> Verdict:
    """Classify a pixel fetch as (is_machine, reason); see the module docstring for the rules."""
    agent = (user_agent or "").strip().lower()
    proxy = _match(agent, HUMAN_PROXIES)
    if proxy is not None:
        return False, proxy
    if not agent:
        return True, "empty-user-agent"
    if is_apple_mpp(user_agent, ip):
        return True, "apple-mpp"
    reason = _automated(agent)
    return (True, reason) if reason else (False, None)


def is_office_preflight(user_agent: str | None) -> bool:
    """True for an Office app or SafeLinks checking a link (Office agent, no browser token)."""
    agent = (user_agent or "").lower()
    office = any(token in agent for token in OFFICE_AGENTS)
    return office and not any(token in agent for token in BROWSER_TOKENS)


def is_too_fast(
    sent_at: datetime | None, occurred_at: datetime, *, seconds: float = FAST_CLICK_SECONDS
) -> bool:
    """True when the event came less than ``seconds`` after sending (unknown send time: False)."""
    if sent_at is None:
        return False
    return (occurred_at - sent_at).total_seconds() < seconds


def click_signals(
    user_agent: str | None,
    ip: str | None,
    sent_at: datetime | None,
    occurred_at: datetime,
    *,
    fast_seconds: float = FAST_CLICK_SECONDS,
    method: str = "GET",
    prefetch: bool = False,
) -> list[str]:
    """Every per-request machine reason that holds for a click, in the order of the rules."""
    agent = (user_agent or "").strip().lower()
    found: list[str | None] = [
        "empty-user-agent" if not agent else None,
        "head-request" if method.upper() == "HEAD" else None,
        "prefetch" if prefetch else None,
        _match(agent, SCANNER_AGENTS),
    ]
    vendor = scanner_network(ip)
    found.append(f"scanner-ip:{vendor}" if vendor else None)
    found.append("office-preflight" if agent and is_office_preflight(agent) else None)
    found.append(_match(agent, BOT_AGENTS))
    fast = is_too_fast(sent_at, occurred_at, seconds=fast_seconds)
    found.append("too-fast" if fast else None)
    return [reason for reason in found if reason]


def classify_click(
    user_agent: str | None,
    ip: str | None,
    sent_at: datetime | None,
    occurred_at: datetime,
    *,
    fast_seconds: float = FAST_CLICK_SECONDS,
    method: str = "GET",
    prefetch: bool = False,
) -> Verdict:
    """Classify a click as (is_machine, reason); see the module docstring for the rules."""
    reasons = click_signals(
        user_agent,
        ip,
        sent_at,
        occurred_at,
        fast_seconds=fast_seconds,
        method=method,
        prefetch=prefetch,
    )
    return (True, reasons[0]) if reasons else (False, None)
