"""A labelled synthetic click log (scanners and people) and the machine classifier measured on it.

The world (``ScannerWorld``; every number is a parameter, none is read from the classifier):
a share of messages lands behind a security gateway that scans it once, its burst starting
5-120 s after delivery (log-normal, median 43 s, the median start reported by a published log
analysis of scanner bursts), clicking links 0.05-1.5 s apart. Gateways differ: some announce
themselves in the user agent, most send a browser's; some follow hidden links and some do not;
some probe with HEAD; a few sample only one or two links; some fetch the images first; some
scan from their vendor's published range. (Gateways that re-scan hours later are not in this
world: the bursts measured are those that start 5-120 s after delivery.) People open a share
of messages (images on or off), click one to three links, the first from 30 s (push
notifications) to days after delivery,
further clicks seconds to minutes apart; a few double-click, a few open several links in tabs
within seconds.

``evaluate(log)`` runs the real rules (``track.bots.click_signals`` per request,
``track.bursts`` per message) over every message and reports, per rule, how many clicks it
flags and how precise that is, and for the whole classifier recall on scanner bursts and
clicks and precision on the clicks it calls human.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from newsletter.track import bots
from newsletter.track.bursts import RULES, Hit, burst_rules, bursts, machine_hits

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SCANNER_UA = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"


@dataclass(frozen=True)
class ScannerWorld:
    """The parameters of the synthetic log."""

    messages: int = 4000
    links: tuple[int, int] = (6, 12)  # visible links per message
    scanned: float = 0.30  # share of messages a gateway scans
    announces: float = 0.20  # gateways naming themselves in the user agent
    follows_hidden: float = 0.70  # gateways that also follow the hidden link
    head_probe: float = 0.05  # gateways probing with HEAD
    samples: float = 0.08  # gateways clicking only one or two links
    fetches_images: float = 0.5  # gateways fetching the pixel before clicking
    vendor_range: float = 0.15  # gateways scanning from a published range
    start_median: float = 43.0  # seconds after delivery
    opened: float = 0.25  # messages a person opens
    images_on: float = 0.6  # openers whose pixel loads
    clicks: float = 0.35  # openers who click
    push: float = 0.04  # clicking openers who click within minutes of delivery
    tabs: float = 0.03  # multi-clickers opening links in tabs seconds apart
    double_click: float = 0.05  # clicks repeated within a second


@dataclass(frozen=True)
class Logged:
    """One request of the log, with the truth."""

    message: int
    hit: Hit
    machine: bool
    burst: int | None  # the scanner burst it belongs to (None: a person)
    user_agent: str
    ip: str
    method: str = "GET"


def _start(rng: random.Random, world: ScannerWorld) -> float:
    return min(120.0, max(5.0, rng.lognormvariate(math.log(world.start_median), 0.6)))


def _scanner(
    rng: random.Random, world: ScannerWorld, m: int, n_links: int, burst: int, ids: list[int]
) -> list[Logged]:
    agent = SCANNER_UA if rng.random() < world.announces else BROWSER
    ip = "64.235.150.7" if rng.random() < world.vendor_range else f"52.{rng.randrange(256)}.3.9"
    method = "HEAD" if rng.random() < world.head_probe else "GET"
    links = list(range(n_links))
    rng.shuffle(links)
    if rng.random() < world.samples:
        links = links[: rng.choice((1, 2))]
    plan: list[int | None] = list(links)
    if rng.random() < world.follows_hidden:
        plan.insert(rng.randrange(len(plan) + 1), None)  # None: the honeypot
    at = T0 + timedelta(seconds=_start(rng, world))
    out = []
    if rng.random() < world.fetches_images:
        hit = Hit(ids.pop(), "open", at - timedelta(seconds=rng.uniform(0.1, 5.0)))
        out.append(Logged(m, hit, True, burst, agent, ip))
    for link in plan:
        kind = "honeypot" if link is None else "click"
        hit = Hit(ids.pop(), kind, at, None if link is None else f"slot:{link}")
        out.append(Logged(m, hit, True, burst, agent, ip, method))
        at += timedelta(seconds=rng.uniform(0.05, 1.5))
    return out


def _person(
    rng: random.Random, world: ScannerWorld, m: int, n_links: int, ids: list[int]
) -> list[Logged]:
    ip = f"81.2.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if rng.random() < world.push:
        first = rng.uniform(30, 240)
    else:
        first = rng.lognormvariate(math.log(3 * 3600), 1.2) + 60
    at = T0 + timedelta(seconds=first)
    out = []
    if rng.random() < world.images_on:
        opened = at - timedelta(seconds=rng.uniform(5, 120))
        out.append(
            Logged(
                m,
                Hit(ids.pop(), "open", max(opened, T0 + timedelta(seconds=2))),
                False,
                None,
                BROWSER,
                ip,
            )
        )
    if rng.random() >= world.clicks:
        return out
    count = rng.choice((1, 1, 1, 2, 2, 3))
    tabs = count > 1 and rng.random() < world.tabs
    for link in rng.sample(range(n_links), count):
        out.append(Logged(m, Hit(ids.pop(), "click", at, f"slot:{link}"), False, None, BROWSER, ip))
        if rng.random() < world.double_click:
            again = at + timedelta(seconds=rng.uniform(0.2, 1.0))
            out.append(
                Logged(m, Hit(ids.pop(), "click", again, f"slot:{link}"), False, None, BROWSER, ip)
            )
        gap = rng.uniform(1.0, 4.0) if tabs else rng.lognormvariate(math.log(90), 0.8) + 8
        at += timedelta(seconds=gap)
    return out


def generate_log(world: ScannerWorld = ScannerWorld(), *, seed: int = 13) -> list[Logged]:
    """The labelled log: every request of every message, in no particular order."""
    rng = random.Random(seed)
    ids = list(range(10_000_000, 0, -1))
    log: list[Logged] = []
    burst = 0
    for m in range(world.messages):
        n_links = rng.randint(*world.links)
        if rng.random() < world.scanned:
            burst += 1
            log += _scanner(rng, world, m, n_links, burst, ids)
        if rng.random() < world.opened:
            log += _person(rng, world, m, n_links, ids)
    return log


@dataclass
class RuleStats:
    """Clicks a rule flags: how many were a machine's, how many a person's."""

    machine: int = 0
    human: int = 0

    @property
    def precision(self) -> float:
        flagged = self.machine + self.human
        return self.machine / flagged if flagged else 1.0


@dataclass
class Evaluation:
    """What the classifier made of the log."""

    rules: dict[str, RuleStats] = field(default_factory=lambda: defaultdict(RuleStats))
    machine_clicks: int = 0
    human_clicks: int = 0
    machine_caught: int = 0
    human_called_machine: int = 0
    bursts: int = 0
    bursts_caught: int = 0

    def recall(self, rule: str) -> float:
        """The share of machine clicks a rule flags on its own."""
        return self.rules[rule].machine / self.machine_clicks if self.machine_clicks else 0.0

    @property
    def click_recall(self) -> float:
        return self.machine_caught / self.machine_clicks

    @property
    def burst_recall(self) -> float:
        return self.bursts_caught / self.bursts

    @property
    def human_precision(self) -> float:
        """Of the clicks called human, the share that a person made."""
        called_human = (self.machine_clicks - self.machine_caught) + (
            self.human_clicks - self.human_called_machine
        )
        return (self.human_clicks - self.human_called_machine) / called_human

    @property
    def human_recall(self) -> float:
        return 1 - self.human_called_machine / self.human_clicks


def _request_flags(entry: Logged) -> list[str]:
    if entry.hit.kind != "click":
        return []
    signals = bots.click_signals(entry.user_agent, entry.ip, T0, entry.hit.at, method=entry.method)
    return [s.split(":")[0] + (":*" if ":" in s else "") for s in signals]


def _per_message(entries: Sequence[Logged], result: Evaluation, rules: Sequence[str]) -> None:
    request = {e.hit.id: _request_flags(e) for e in entries}
    hits = [
        Hit(e.hit.id, e.hit.kind, e.hit.at, e.hit.link, bool(request[e.hit.id])) for e in entries
    ]
    final = machine_hits(hits, sent_at=T0, rules=rules)
    opens = [h for h in hits if h.kind == "open"]
    rule_of: dict[int, list[str]] = defaultdict(list)
    for group in bursts(hits):
        for rule in burst_rules(group, opens, T0):
            rule_of.update({h.id: rule_of[h.id] + [rule] for h in group if h.kind == "click"})
    caught_bursts: dict[int, bool] = {}
    for e in entries:
        if e.hit.kind != "click":
            continue
        flagged = bool(request[e.hit.id]) or e.hit.id in final
        for rule in set(request[e.hit.id]) | set(rule_of[e.hit.id]):
            stats = result.rules[rule]
            stats.machine += e.machine
            stats.human += not e.machine
        if e.machine:
            result.machine_clicks += 1
            result.machine_caught += flagged
            assert e.burst is not None
            caught_bursts[e.burst] = caught_bursts.get(e.burst, True) and flagged
        else:
            result.human_clicks += 1
            result.human_called_machine += flagged
    result.bursts += len(caught_bursts)
    result.bursts_caught += sum(caught_bursts.values())


def evaluate(log: Sequence[Logged], *, rules: Sequence[str] = RULES) -> Evaluation:
    """Run the rules (per request, and the message-level ``rules``) over every message of
    ``log`` and count what they got right; per-rule counts always cover every rule."""
    by_message: dict[int, list[Logged]] = defaultdict(list)
    for entry in log:
        by_message[entry.message].append(entry)
    result = Evaluation()
    for entries in by_message.values():
        _per_message(entries, result, rules)
    return result


def report_lines(result: Evaluation) -> list[str]:
    """A Markdown table of the evaluation (for benchmarks/README.md)."""
    lines = [
        "| rule | clicks flagged | precision | recall (of machine clicks) |",
        "| --- | ---: | ---: | ---: |",
    ]
    order = ["empty-user-agent", "head-request", "prefetch", "scanner:*", "scanner-ip:*"]
    order += ["office-preflight", "bot:*", "too-fast", *RULES]
    for rule in order:
        stats = result.rules.get(rule, RuleStats())
        flagged = stats.machine + stats.human
        lines.append(f"| {rule} | {flagged} | {stats.precision:.2%} | {result.recall(rule):.2%} |")
    flagged = result.machine_caught + result.human_called_machine
    precision = result.machine_caught / max(1, flagged)
    lines.append(f"| **all rules** | {flagged} | {precision:.2%} | {result.click_recall:.2%} |")
    return lines
