"""Simulated recipients read the delivered emails and hit the real tracking routes.

Each message's HTML part is read as a mail client would (quoted-printable decoded), its links
collected: the open pixel, one click link per slot (which slot a link is for is read from the
link itself with ``newsletter.tokens.verify_click``, as a reader sees which article a link leads
to), unsubscribe, preferences and view-in-browser. The planned reactions
(:class:`~newsletter.simulate.behaviour.Reactions`) become HTTP requests, made in simulated
time order through an in-process ASGI client (:mod:`newsletter.simulate.asgi`) on the FastAPI
app of ``newsletter.api`` behind uvicorn's proxy-headers middleware, with the event buffer on
(as ``newsletter serve`` runs it), so every request carries its user agent and client address.
The app's clock is set to each request's simulated time: nothing sleeps. With ``workers`` > 1
the messages are split over forked processes, each with its own app and connections.
"""

from __future__ import annotations

import asyncio
import binascii
import multiprocessing as mp
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from newsletter import tokens
from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.deliver.transport import OutgoingMessage
from newsletter.simulate import agents, asgi
from newsletter.simulate.adapters import SimulationError
from newsletter.simulate.behaviour import Reactions
from newsletter.track.buffer import EventBuffer

ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass
class Inbox:
    """The links of one received message."""

    pixel: str | None = None
    unsubscribe: str | None = None
    slots: dict[int, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)  # every distinct link, in order


def read_message(message: OutgoingMessage, *, settings: Settings) -> Inbox:
    """Collect the tracking links of a delivered message from its HTML part.

    A link that appears twice (an article's image, title and "read more") is read once.
    """
    raw = message.data
    start = raw.find(b"Content-Type: text/html")
    body = binascii.a2b_qp(raw[start:] if start >= 0 else raw)
    inbox = Inbox()
    own = settings.base_url.rstrip("/") + "/"
    seen: set[str] = set()
    for attribute, value in _links(body, own):
        url = value.decode("utf-8", "replace").replace("&amp;", "&")
        path = url[len(own) :]
        if attribute == b"src" and b"/t/o/" not in value[1:-1]:
            continue  # an image that is not the open pixel
        if path.startswith("t/o/"):
            inbox.pixel = url
            continue
        if url in seen:
            continue
        seen.add(url)
        inbox.links.append(url)
        if path.startswith("u/"):
            inbox.unsubscribe = url
        elif path.startswith("t/c/"):
            try:
                payload = tokens.verify_click(path[4:], secret_key=settings.secret_key)
            except tokens.TokenError:
                continue
            if payload.slot is not None:
                inbox.slots.setdefault(payload.slot, url)
    return inbox


def _links(body: bytes, own: str) -> list[tuple[bytes, bytes]]:
    """(attribute, URL) of every ``href="..."`` or ``src="..."`` pointing at the service, in
    order (a literal search: a regular expression over the 50 KB body cost 0.3 ms a message)."""
    needle = b'="' + own.encode()
    out: list[tuple[bytes, bytes]] = []
    at = body.find(needle)
    while at >= 0:
        end = body.find(b'"', at + 2)
        if end < 0:
            break
        for attribute in (b"href", b"src"):
            if body.endswith(attribute, 0, at):
                out.append((attribute, body[at + 2 : end]))
        at = body.find(needle, end)
    return out


_NOW: ContextVar[datetime | None] = ContextVar("simulated_now", default=None)
EPOCH = datetime.fromtimestamp(0, UTC)
TIME_HEADER = b"x-simulated-time"


class SimClock:
    """The tracking app's clock: the simulated time of the request being handled.

    Requests carry their simulated time in a header that :func:`with_simulated_time` (a thin
    ASGI wrapper around the real app) moves into a context variable, so concurrent requests
    each see their own time (context variables follow a request into the thread pool).
    """

    def __call__(self) -> datetime:
        return _NOW.get() or EPOCH


def with_simulated_time(app: Any) -> Any:
    """Wrap an ASGI app so each request's ``x-simulated-time`` (Unix seconds) is its clock."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            for name, value in scope.get("headers", []):
                if name == TIME_HEADER:
                    _NOW.set(datetime.fromtimestamp(float(value), UTC))
        await app(scope, receive, send)

    return wrapped


@dataclass(frozen=True)
class Request:
    """One HTTP request a recipient or a machine makes."""

    at: float
    method: str
    url: str
    agent: str
    ip: str
    message: int  # message id
    kind: str  # open | click | unsubscribe | scan


def _human_requests(r: Reactions, k: int, box: Inbox, world_people: Any) -> list[Request]:
    user, mid = int(r.user[k]), int(r.message_id[k])
    ip = agents.person_ip(user)
    out: list[Request] = []
    if r.pixel[k] and box.pixel:
        agent = agents.OPEN_AGENTS[int(world_people.mail_client[user])]
        out.append(Request(float(r.open_time[k]), "GET", box.pixel, agent, ip, mid, "open"))
    if not np.isnan(r.mpp_time[k]) and box.pixel:
        mpp = agents.apple_ip(mid)
        out.append(Request(float(r.mpp_time[k]), "GET", box.pixel, "Mozilla/5.0", mpp, mid, "mpp"))
    browser = agents.BROWSER_AGENTS[int(world_people.browser[user])]
    if r.unsubscribe[k] and box.unsubscribe:
        at = float(r.unsubscribe_time[k])
        out.append(Request(at, "GET", box.unsubscribe, browser, ip, mid, "unsubscribe-page"))
        out.append(Request(at + 20, "POST", box.unsubscribe, browser, ip, mid, "unsubscribe"))
    return out


def _scan_requests(r: Reactions, k: int, box: Inbox, world_people: Any) -> list[Request]:
    user, mid = int(r.user[k]), int(r.message_id[k])
    if world_people.disguised[user]:
        agent = agents.DISGUISED_SCANNER
    else:
        agent = agents.NAMED_SCANNERS[user % len(agents.NAMED_SCANNERS)]
    ip = agents.scanner_ip(user // 40)
    start = float(r.scan_time[k])
    urls = ([box.pixel] if box.pixel else []) + box.links
    return [
        Request(start + 0.4 * n, "GET", url, agent, ip, mid, "scan") for n, url in enumerate(urls)
    ]


def plan_requests(reactions: Reactions, inboxes: dict[int, Inbox], *, people: Any) -> list[Request]:
    """Every request the run's reactions make, in simulated time order."""
    r = reactions
    out: list[Request] = []
    for k, mid in enumerate(r.message_id.tolist()):
        box = inboxes.get(mid)
        if box is None:
            continue
        out.extend(_human_requests(r, k, box, people))
        if not np.isnan(r.scan_time[k]):
            out.extend(_scan_requests(r, k, box, people))
    for s in np.flatnonzero(r.clicked).tolist():
        k = int(r.slot_message[s])
        mid, user = int(r.message_id[k]), int(r.user[k])
        box = inboxes.get(mid)
        url = box.slots.get(int(r.slot_position[s])) if box else None
        if url is None:
            continue
        agent = agents.BROWSER_AGENTS[int(people.browser[user])]
        ip = agents.person_ip(user)
        out.append(Request(float(r.click_time[s]), "GET", url, agent, ip, mid, "click"))
    out.sort(key=lambda q: (q.at, q.message, q.url))
    return out


@dataclass
class Outcome:
    """What the requests of one worker got back."""

    statuses: Counter[str] = field(default_factory=Counter)
    unsubscribed: list[int] = field(default_factory=list)  # message ids confirmed

    def merge(self, other: Outcome) -> None:
        self.statuses.update(other.statuses)
        self.unsubscribed.extend(other.unsubscribed)


async def _one(app: Any, q: Request, outcome: Outcome) -> None:
    headers = {"user-agent": q.agent, "x-forwarded-for": q.ip, "x-simulated-time": repr(q.at)}
    body = b""
    if q.method == "POST":
        headers["content-type"] = "application/x-www-form-urlencoded"
        body = ONE_CLICK.encode()
    response = await asgi.request(app, q.method, q.url, headers=headers, body=body)
    outcome.statuses[f"{q.kind} {response.status_code}"] += 1
    if q.kind == "unsubscribe" and response.status_code == 200:
        outcome.unsubscribed.append(q.message)


async def _send_all(
    app: Any, requests: list[Request], concurrency: int, buffer: EventBuffer | None
) -> Outcome:
    """Make the requests in time order, `concurrency` at a time (a window that slides).

    The tracking app's event buffer is flushed whenever it holds its ``flush_rows`` (as its
    flusher thread would when traffic is heavy), so what is written, and when in simulated
    time the burst rules run, does not depend on how fast this machine is.
    """
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    outcome = Outcome()
    wrapped = with_simulated_time(ProxyHeadersMiddleware(app, trusted_hosts="*"))
    for start in range(0, len(requests), concurrency):
        batch = requests[start : start + concurrency]
        await asyncio.gather(*(_one(wrapped, q, outcome) for q in batch))
        if buffer is not None and buffer.pending() >= buffer.flush_rows:
            buffer.flush()
    return outcome


def _run(engine: Engine, settings: Settings, requests: list[Request], concurrency: int) -> Outcome:
    """Make `requests` against a buffered tracking app, as ``newsletter serve`` runs it.

    ASGITransport runs no lifespan, so the buffer is flushed here (no flusher thread) and
    closed at the end; an event the buffer could not write is a failed simulation.
    """
    from newsletter.api.app import create_app

    app = create_app(settings=settings, engine=engine, clock=SimClock(), buffered=True)
    buffer: EventBuffer | None = app.state.tracking.buffer
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop in this thread: the usual case
        outcome = asyncio.run(_send_all(app, requests, concurrency, buffer))
    else:
        with ThreadPoolExecutor(1) as pool:  # called from inside an event loop (a notebook...)
            job = pool.submit(asyncio.run, _send_all(app, requests, concurrency, buffer))
            outcome = job.result()
    if buffer is not None:
        left = buffer.close()
        lost = left + buffer.stats["dropped"]
        if lost:
            raise SimulationError(
                f"the tracking buffer lost {lost} events ({buffer.stats}); see the log"
            )
    return outcome


_STATE: dict[str, Any] = {}


def _child(part: int) -> Outcome:
    s = _STATE
    s["engine"].dispose(close=False)
    mine = [q for q in s["requests"] if q.message % s["workers"] == part]
    return _run(s["engine"], s["settings"], mine, s["concurrency"])


def make_requests(
    engine: Engine,
    *,
    settings: Settings,
    requests: list[Request],
    workers: int = 1,
    concurrency: int = 8,
) -> Outcome:
    """Make the requests against the tracking app (in `workers` forked processes when > 1)."""
    if workers <= 1 or "fork" not in mp.get_all_start_methods() or len(requests) < 200:
        return _run(engine, settings, requests, concurrency)
    _STATE.update(
        engine=engine,
        settings=settings,
        requests=requests,
        workers=workers,
        concurrency=concurrency,
    )
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_child, range(workers), chunksize=1)
    finally:
        _STATE.clear()
    total = Outcome()
    for part in parts:
        total.merge(part)
    return total
