"""Who fetches what: the user agents and addresses of simulated mail clients, browsers,
Apple's privacy proxy and corporate link scanners.

The strings are the shapes real traffic has (a mail client's pixel fetch, a browser's click,
Apple Mail Privacy Protection's bare ``Mozilla/5.0`` from Apple's 17.0.0.0/8, security
gateways that name themselves, and gateways that pretend to be a browser). Addresses are
strings only (nothing is ever contacted): people and scanners use the documentation ranges.
"""

from __future__ import annotations

import numpy as np

# Pixel fetches when a person opens the message (client families; Gmail fetches via its proxy).
OPEN_AGENTS = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro) AppleWebKit",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.9.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.82 Mobile Safari/537.36",
    "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
)
# Browsers that open a clicked link.
BROWSER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
)
APPLE_MPP_AGENT = "Mozilla/5.0"
# Security gateways that say who they are (the tracking service recognises these).
NAMED_SCANNERS = (
    "Mozilla/5.0 (compatible; Barracuda Sentinel URL Scanner)",
    "Proofpoint URL Defense/1.0",
    "Mimecast-Link-Scanner/2.1 (+https://www.mimecast.com)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
    "Mozilla/5.0 (compatible; Sophos Email Security)",
)
# Gateways that fetch with a browser's user agent from a data centre (not recognisable).
DISGUISED_SCANNER = BROWSER_AGENTS[0]


def person_ip(subscriber: int) -> str:
    """A stable home address per subscriber (TEST-NET-3)."""
    return f"203.0.113.{subscriber % 250 + 1}"


def apple_ip(draw: int) -> str:
    """An address of Apple's privacy proxy (17.0.0.0/8)."""
    return f"17.58.{draw % 200 + 1}.{draw % 97 + 3}"


def scanner_ip(organisation: int) -> str:
    """A security gateway's address (TEST-NET-1)."""
    return f"192.0.2.{organisation % 250 + 1}"


def client_families(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per reader: the mail client (index into OPEN_AGENTS) and browser (BROWSER_AGENTS)."""
    mail = rng.choice(len(OPEN_AGENTS), n, p=[0.42, 0.16, 0.04, 0.14, 0.2, 0.04])
    browser = rng.integers(0, len(BROWSER_AGENTS), n)
    return mail.astype(np.int64), browser.astype(np.int64)
