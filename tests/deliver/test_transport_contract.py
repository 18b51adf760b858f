"""Every transport keeps the same contract: each message arrives exactly once, results say sent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from smtp_server import SmtpTestServer

from newsletter.deliver import (
    MemoryTransport,
    OutboxTransport,
    OutgoingMessage,
    SendResult,
    Transport,
    transport_from_url,
)

Arrived = Callable[[], Counter[str]]


def _ids(blobs: list[bytes]) -> Counter[str]:
    parser = BytesHeaderParser()
    return Counter(str(parser.parsebytes(b)["Message-ID"]) for b in blobs)


@pytest.fixture(params=["smtp", "smtp-4-connections", "outbox", "memory"])
def transport_and_arrivals(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    smtp_server_factory: Callable[..., SmtpTestServer],
) -> Iterator[tuple[Transport, Arrived]]:
    """Yield a transport and a function counting what arrived at its far end per Message-ID."""
    kind: str = request.param
    if kind.startswith("smtp"):
        server = smtp_server_factory()
        connections = 4 if "4" in kind else 1
        with transport_from_url(server.url, connections=connections) as transport:
            yield (
                transport,
                lambda: Counter({str(k): n for k, n in server.count_by_message_id().items()}),
            )
    elif kind == "outbox":
        with transport_from_url(f"outbox:{tmp_path / 'outbox'}") as transport:
            assert isinstance(transport, OutboxTransport)
            folder = transport.directory
            yield transport, lambda: _ids([p.read_bytes() for p in folder.glob("*.eml")])
    else:
        with transport_from_url("memory:") as transport:
            assert isinstance(transport, MemoryTransport)
            yield transport, lambda: _ids([m.data for m in transport.sent])


@pytest.mark.timeout(60)
def test_every_message_arrives_exactly_once(
    transport_and_arrivals: tuple[Transport, Arrived],
    make_messages: Callable[..., list[OutgoingMessage]],
) -> None:
    transport, arrived = transport_and_arrivals
    messages = make_messages(25)
    seen: list[SendResult] = []

    first = transport.send(messages[0])
    results = transport.send_many(iter(messages[1:]), on_result=seen.append)

    assert first.status == "sent" and first.key == 0
    assert seen == results
    assert sorted(r.key for r in results) == list(range(1, 25))
    assert {r.status for r in results} == {"sent"}
    assert not any(r.bounced or r.maybe_delivered for r in [first, *results])
    expected = Counter(f"<run1.{i}@sender.test>" for i in range(25))
    assert arrived() == expected


@pytest.mark.timeout(60)
def test_send_many_consumes_lazily_and_reports_in_caller_thread(
    transport_and_arrivals: tuple[Transport, Arrived],
    make_messages: Callable[..., list[OutgoingMessage]],
) -> None:
    """The dispatcher marks a message `sending` as it yields it: never more than a window ahead."""
    import threading

    transport, _ = transport_and_arrivals
    messages = make_messages(30)
    yielded: list[int] = []
    reported: list[int] = []
    caller = threading.get_ident()

    def source() -> Iterator[OutgoingMessage]:
        for m in messages:
            assert threading.get_ident() == caller
            yielded.append(int(m.key))
            yield m

    def on_result(result: SendResult) -> None:
        assert threading.get_ident() == caller
        assert int(result.key) in yielded  # never reported before it was handed out
        reported.append(int(result.key))
        assert len(yielded) - len(reported) <= 8  # bounded in flight (2 x 4 connections)

    transport.send_many(source(), on_result=on_result)
    assert sorted(reported) == list(range(30))
