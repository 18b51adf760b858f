"""Machine-open and scanner-click heuristics, with known answers for real-world user agents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from newsletter.track import bots

SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LATER = SENT + timedelta(hours=2)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
APPLE_MAIL = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
CUBOT = (
    "Mozilla/5.0 (Linux; Android 9; CUBOT X19) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36"
)


@pytest.mark.parametrize(
    ("agent", "ip", "expected"),
    [
        ("Mozilla/5.0", "17.58.101.5", (True, "apple-mpp")),
        ("Mozilla/5.0", "104.28.2.9", (True, "apple-mpp")),  # MPP via a partner egress
        ("", "17.0.0.1", (True, "empty-user-agent")),
        (None, None, (True, "empty-user-agent")),
        ("SomeFetcher", "17.250.1.1", (True, "apple-mpp")),  # Apple IP, no mail client
        ("SomeFetcher", "::ffff:17.1.2.3", (True, "apple-mpp")),  # IPv4-mapped IPv6
        (APPLE_MAIL, "17.1.2.3", (False, None)),  # an Apple employee reading in Mail
        (APPLE_MAIL, "81.2.69.142", (False, None)),
        (IPHONE, "81.2.69.142", (False, None)),
        (GMAIL, "66.249.84.1", (False, "gmail-proxy")),  # the proxy fetches on a human open
        (
            "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
            "98.136.1.1",
            (False, "yahoo-proxy"),
        ),
        (OUTLOOK, "81.2.69.142", (False, None)),  # Outlook desktop opens are human
        (CHROME, "not-an-ip", (False, None)),
        (
            "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))",
            "64.235.1.1",
            (True, "scanner:barracuda"),
        ),
        ("python-requests/2.32.3", "81.2.69.142", (True, "bot:python-requests")),
        ("Mozilla/5.0 HeadlessChrome/120.0", "81.2.69.142", (True, "bot:headless-chrome")),
    ],
)
def test_classify_open(
    agent: str | None, ip: str | None, expected: tuple[bool, str | None]
) -> None:
    assert bots.classify_open(agent, ip, SENT, LATER) == expected


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (CHROME, (False, None)),
        (IPHONE, (False, None)),
        (CUBOT, (False, None)),  # "bot" inside a phone model is not a bot
        ("", (True, "empty-user-agent")),
        (None, (True, "empty-user-agent")),
        ("Mozilla/5.0 (compatible; Barracuda Sentinel (EE))", (True, "scanner:barracuda")),
        ("Proofpoint URL Defense", (True, "scanner:proofpoint")),
        ("Mimecast-Url-Protect/1.0", (True, "scanner:mimecast")),
        (OUTLOOK, (True, "office-preflight")),
        ("Microsoft Office Existence Discovery", (True, "office-preflight")),
        (
            "Mozilla/5.0 (Windows NT 10.0; ms-office; MSOffice 16) Chrome/120.0 Safari/537.36",
            (False, None),
        ),
        ("curl/8.5.0", (True, "bot:curl")),
        ("python-requests/2.32.3", (True, "bot:python-requests")),
        ("Go-http-client/1.1", (True, "bot:go-http-client")),
        (
            "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0.0.0 Safari/537.36",
            (True, "bot:headless-chrome"),
        ),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            (True, "bot:crawler"),
        ),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", (True, "bot:crawler")),
        ("Twitterbot/1.0", (True, "bot:bot")),
    ],
)
def test_classify_click_by_user_agent(agent: str | None, expected: tuple[bool, str | None]) -> None:
    assert bots.classify_click(agent, "81.2.69.142", SENT, SENT + timedelta(seconds=60)) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, (True, "too-fast")),  # before the send time (clock skew): not a person
        (0, (True, "too-fast")),
        (3, (True, "too-fast")),
        (9.999, (True, "too-fast")),
        (10, (False, None)),
        (60, (False, None)),
        (86400 * 30, (False, None)),
    ],
)
def test_classify_click_by_timing(seconds: float, expected: tuple[bool, str | None]) -> None:
    assert bots.classify_click(CHROME, None, SENT, SENT + timedelta(seconds=seconds)) == expected


def test_unknown_send_time_and_a_custom_threshold() -> None:
    assert bots.classify_click(CHROME, None, None, SENT) == (False, None)
    assert bots.classify_click(
        CHROME, None, SENT, SENT + timedelta(seconds=20), fast_seconds=30
    ) == (
        True,
        "too-fast",
    )


def test_a_scanner_reason_wins_over_timing() -> None:
    assert bots.classify_click("Proofpoint", None, SENT, SENT) == (True, "scanner:proofpoint")


def test_pattern_lists_are_lower_case_and_reasons_fit_the_column() -> None:
    for patterns in (bots.HUMAN_PROXIES, bots.SCANNER_AGENTS, bots.BOT_AGENTS):
        for needle, reason in patterns:
            assert needle == needle.lower() and needle
            assert len(reason) <= 100


@pytest.mark.parametrize(
    ("ip", "vendor"),
    [
        ("64.235.150.7", "barracuda"),
        ("::ffff:205.139.110.20", "mimecast"),
        ("148.163.130.1", "proofpoint"),
        ("81.2.69.142", None),
        ("2001:db8::1", None),
        ("not-an-ip", None),
        (None, None),
    ],
)
def test_scanner_network(ip: str | None, vendor: str | None) -> None:
    assert bots.scanner_network(ip) == vendor


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"sec-purpose": "prefetch;prerender"}, True),
        ({"purpose": "prefetch"}, True),
        ({"x-purpose": "preview"}, True),
        ({"x-moz": "prefetch"}, True),
        ({"sec-fetch-mode": "navigate"}, False),
        ({}, False),
    ],
)
def test_is_prefetch(headers: dict[str, str], expected: bool) -> None:
    assert bots.is_prefetch(headers) is expected


def test_click_signals_lists_every_reason_in_rule_order() -> None:
    later = SENT + timedelta(hours=1)
    assert bots.click_signals(CHROME, "64.235.150.7", SENT, later, method="HEAD") == [
        "head-request",
        "scanner-ip:barracuda",
    ]
    assert bots.click_signals("Proofpoint", None, SENT, SENT, prefetch=True) == [
        "prefetch",
        "scanner:proofpoint",
        "too-fast",
    ]
    assert bots.classify_click(CHROME, "64.235.150.7", SENT, later) == (
        True,
        "scanner-ip:barracuda",
    )
    assert bots.click_signals(CHROME, "81.2.69.142", SENT, later) == []
