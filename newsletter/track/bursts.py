"""Message-level machine rules: what a scanner does to a whole message gives it away.

Pure functions over the events of one message (no database, no clock). A link scanner that
sends a browser's user agent from an ordinary address looks like a person on each request,
but not in how it treats the message: it follows a link no person can see, and it clicks many
links within seconds. A *burst* is a run of the message's clicks (and honeypot hits) each less
than ``BURST_GAP_SECONDS`` after the previous one. Rules, each marking every click and open of
the burst machine:

1. ``honeypot``: the burst contains a hit on the message's hidden honeypot link (in the HTML
   part only, ``display:none``, ``aria-hidden``: people never see or hear it).
2. ``link-burst``: ``MANY_LINKS`` (3) or more distinct links clicked within
   ``MANY_LINKS_SECONDS`` (5 s) inside the burst.
3. ``early-unopened`` (weak): the burst starts within ``EARLY_SECONDS`` (180 s) of delivery and
   no human-looking open came before it (an open at least ``BURST_GAP_SECONDS`` before the
   burst that is not itself machine: an open right before a burst belongs to the burst).
   Neither half is enough alone (a reader with images off opens without a pixel; a reader
   with a push notification clicks within a minute), so this rule needs both, and reports
   can tell it apart by its reason.

The rules only ever add machine flags (a later burst can reveal that earlier clicks were a
scanner's; nothing a scanner does later makes a click human), and re-running them over the
same events gives the same answer, so the store can apply them after every new event.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

BURST_GAP_SECONDS = 10.0
MANY_LINKS = 3
MANY_LINKS_SECONDS = 5.0
EARLY_SECONDS = 180.0
# An open counts as the reader's only when it came a burst gap or more before the click: an
# open just before a burst is the scanner rendering the message (``machine_hits`` marks it).
OPEN_LEAD_SECONDS = BURST_GAP_SECONDS
RULES = ("honeypot", "link-burst", "early-unopened")


@dataclass(frozen=True)
class Hit:
    """One event of a message as the rules see it."""

    id: int
    kind: str  # click | open | honeypot
    at: datetime
    link: str | None = None  # the slot or URL clicked
    is_machine: bool = False


def link_of(slot: int | None, url: str | None) -> str | None:
    """How the rules tell a message's links apart: the slot clicked, else the URL."""
    return f"slot:{slot}" if slot is not None else url


def bursts(hits: Sequence[Hit]) -> list[list[Hit]]:
    """The message's clicks and honeypot hits grouped into bursts (time order)."""
    chain = sorted((h for h in hits if h.kind in ("click", "honeypot")), key=lambda h: h.at)
    groups: list[list[Hit]] = []
    for hit in chain:
        if groups and (hit.at - groups[-1][-1].at).total_seconds() < BURST_GAP_SECONDS:
            groups[-1].append(hit)
        else:
            groups.append([hit])
    return groups


def _many_links(burst: Sequence[Hit]) -> bool:
    """``MANY_LINKS`` distinct links among clicks within ``MANY_LINKS_SECONDS`` of a first one.

    One pass with a sliding window (clicks are in time order): linear in the burst, because a
    message a scanner or an eager reader hammers can collect hundreds of clicks.
    """
    clicks = [h for h in burst if h.kind == "click"]
    window: Counter[str | None] = Counter()
    end = 0
    for first in clicks:
        while (
            end < len(clicks) and (clicks[end].at - first.at).total_seconds() <= MANY_LINKS_SECONDS
        ):
            window[clicks[end].link] += 1
            end += 1
        if len(window) >= MANY_LINKS:
            return True
        window[first.link] -= 1
        if not window[first.link]:
            del window[first.link]
    return False


def _early_unopened(burst: Sequence[Hit], opens: Sequence[Hit], sent_at: datetime | None) -> bool:
    if sent_at is None:
        return False
    start = burst[0].at
    if (start - sent_at).total_seconds() > EARLY_SECONDS:
        return False
    human_open = any(
        not o.is_machine and (start - o.at).total_seconds() >= OPEN_LEAD_SECONDS for o in opens
    )
    return not human_open


def burst_rules(
    burst: Sequence[Hit],
    opens: Sequence[Hit],
    sent_at: datetime | None,
    rules: Sequence[str] = RULES,
) -> list[str]:
    """Every message-level rule (of ``rules``) that holds for one burst, in ``RULES`` order."""
    found = []
    if "honeypot" in rules and any(h.kind == "honeypot" for h in burst):
        found.append("honeypot")
    if "link-burst" in rules and _many_links(burst):
        found.append("link-burst")
    if "early-unopened" in rules and _early_unopened(burst, opens, sent_at):
        found.append("early-unopened")
    return found


def machine_hits(
    hits: Sequence[Hit], *, sent_at: datetime | None, rules: Sequence[str] = RULES
) -> dict[int, str]:
    """{event id: reason} for the clicks and opens the message-level rules mark machine.

    Opens are marked when they fall inside a marked burst (from ``BURST_GAP_SECONDS`` before
    its first hit to its last): the scanner fetched the images too.
    """
    opens = sorted((h for h in hits if h.kind == "open"), key=lambda h: h.at)
    times = [o.at for o in opens]
    marked: dict[int, str] = {}
    for burst in bursts(hits):
        held = burst_rules(burst, opens, sent_at, rules)
        if not held:
            continue
        for hit in burst:
            if hit.kind == "click":
                marked.setdefault(hit.id, held[0])
        low = burst[0].at - timedelta(seconds=BURST_GAP_SECONDS)
        for o in opens[bisect_left(times, low) : bisect_right(times, burst[-1].at)]:
            marked.setdefault(o.id, held[0])
    return marked
