"""SMTP transport: persistent, optionally parallel and rate-limited connections.

Each ``SmtpConnection`` streams messages with PIPELINING when the server offers it (one round
trip per message, see ``smtp_wire``), reconnects once per message when the connection dropped
before the end of its DATA, and turns every outcome into a ``SendResult``.
"""

from __future__ import annotations

import contextlib
import queue
import smtplib
import ssl
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator

from newsletter.deliver import smtp_wire as wire
from newsletter.deliver.ratelimit import Bucket, chain
from newsletter.deliver.retry import TokenBucket
from newsletter.deliver.smtp_feed import Feed as _Feed
from newsletter.deliver.smtp_feed import Job as _Job
from newsletter.deliver.transport import (
    BaseTransport,
    OnResult,
    OutgoingMessage,
    SendResult,
    SendStatus,
    SmtpSettings,
    TransportConfigError,
)

Take = Callable[[], OutgoingMessage | None]


class SmtpConnection:
    """A lazily opened, reused SMTP connection; never raises for per-message errors."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self._lock = threading.Lock()  # one stream at a time, whichever thread asks

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one message and return its outcome."""
        once = iter([message])
        stream = self.stream(lambda: next(once, None))
        try:
            return next(stream)[1]
        finally:
            stream.close()  # releases the connection lock

    def stream(self, take: Take) -> Generator[tuple[OutgoingMessage, SendResult]]:
        """Send what ``take()`` returns until it returns None, yielding (message, outcome).

        ``take`` is called for the next message before the current one's verdict is read, so
        the next envelope rides in the same write as the current content (at most two
        messages in flight). Outcomes come in order, except a refused address (at once).
        An exception from ``take`` is raised after the current message's outcome.
        """
        with self._lock:
            run = _Run(take)
            try:
                while run.fill():
                    yield from run.flush_early()
                    message, envelope = run.pending[0]
                    result = self._step(run, message, envelope)
                    if result is not None:
                        run.finish()
                        yield message, result
                yield from run.flush_early()
            finally:
                if run.ahead:  # abandoned with an envelope on the wire: start afresh next time
                    self._after_failure(drop=True)

    def _step(self, run: _Run, message: OutgoingMessage, envelope: bytes) -> SendResult | None:
        """Try the current message once; None means: resend it on a fresh connection."""
        try:
            smtp = self._smtp or self._connect()
            if smtp.has_extn("pipelining"):
                if not run.ahead:
                    smtp.send(envelope)
                run.ahead = False
                refused = wire.read_envelope(smtp, message)
                tail = run.peek_envelope()
            else:
                refused, tail = wire.envelope_sequential(smtp, message), b""
            return self._finish_data(run, smtp, message, refused, tail)
        except wire.WireFailure as exc:
            self._after_failure(drop=exc.drop)
            return _failure_result(message, exc)
        except wire.DROPS as exc:
            self._after_failure(drop=True)
            if run.attempt == 1:
                run.attempt = 2
                return None
            detail = f"connection lost before end of data: {exc!r}"
            return SendResult(message.key, "transient", None, detail, "data")

    def _finish_data(
        self,
        run: _Run,
        smtp: smtplib.SMTP,
        message: OutgoingMessage,
        refused: wire.Refused,
        tail: bytes,
    ) -> SendResult:
        """Write the content (and the next envelope, if any); read this message's verdict."""
        try:
            smtp.send(wire.dot_stuff(message.data) + tail)
        except wire.DROPS as exc:
            if tail:  # a partial write may have carried the final dot
                return self._lost_after_data(message, exc)
            raise
        try:
            code, reply = smtp.getreply()
        except wire.DROPS as exc:
            return self._lost_after_data(message, exc)
        if code == 421 or code < 0:
            self._after_failure(drop=True)
        else:
            run.ahead = bool(tail)  # the transaction is over; the next envelope stands
        if code == 250:
            return SendResult(message.key, "sent", 250, wire.text(reply), refused=refused)
        return _failure_result(message, wire.WireFailure("data", code, wire.text(reply)))

    def _lost_after_data(self, message: OutgoingMessage, exc: BaseException) -> SendResult:
        self._after_failure(drop=True)
        detail = f"connection lost after end of data: {exc!r}"
        return SendResult(message.key, "transient", None, detail, "data", maybe_delivered=True)

    def _connect(self) -> smtplib.SMTP:
        """Open, greet, secure and authenticate a new connection."""
        s = self.settings
        try:
            smtp: smtplib.SMTP
            if s.security == "tls":
                context = s.ssl_context or ssl.create_default_context()
                smtp = smtplib.SMTP_SSL(
                    s.host,
                    s.port,
                    local_hostname=s.local_hostname,
                    timeout=s.timeout,
                    context=context,
                )
            else:
                smtp = smtplib.SMTP(
                    s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout
                )
            self._smtp = smtp
            self._secure_and_login(smtp)
            return smtp
        except smtplib.SMTPResponseException as exc:
            self._after_failure(drop=True)
            detail = wire.text(exc.smtp_error)
            raise wire.WireFailure("connect", exc.smtp_code, detail, drop=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            self._after_failure(drop=True)
            detail = f"cannot connect to {s.host}:{s.port}: {exc}"
            raise wire.WireFailure("connect", None, detail, drop=True) from None

    def _secure_and_login(self, smtp: smtplib.SMTP) -> None:
        s = self.settings
        smtp.ehlo()
        if s.security in ("starttls", "starttls-required"):
            if smtp.has_extn("starttls"):
                smtp.starttls(context=s.ssl_context or ssl.create_default_context())
                smtp.ehlo()
            elif s.security == "starttls-required":
                detail = f"{s.host}:{s.port} does not offer STARTTLS (starttls=required)"
                raise wire.WireFailure("connect", None, detail, drop=True)
        if s.username is not None:
            wire.login(smtp, s.username, s.password or "")

    def _after_failure(self, *, drop: bool) -> None:
        """Reset the transaction, or throw the connection away if it is no longer usable."""
        smtp = self._smtp
        if smtp is None:
            return
        if not drop:
            try:
                smtp.rset()
                return
            except (OSError, smtplib.SMTPException):
                pass
        self._smtp = None
        with contextlib.suppress(OSError):
            smtp.close()

    def close(self) -> None:
        """Say QUIT (best effort) and close the socket."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def _failure_result(message: OutgoingMessage, exc: wire.WireFailure) -> SendResult:
    """Classify: 5xx is permanent, except at connect (our setup, not the message)."""
    permanent = exc.stage != "connect" and 500 <= (exc.code or 0) < 600
    status: SendStatus = "permanent" if permanent else "transient"
    return SendResult(message.key, status, exc.code, exc.detail, exc.stage)


class _Run:
    """One stream's bookkeeping: messages taken but not finished, and the pipelining state."""

    def __init__(self, take: Take) -> None:
        self.take = take
        self.pending: deque[tuple[OutgoingMessage, bytes]] = deque()
        self.early: list[tuple[OutgoingMessage, SendResult]] = []
        self.ahead = False  # the envelope of pending[0] is already on the current connection
        self.attempt = 1
        self.error: BaseException | None = None

    def fill(self) -> bool:
        """Make sure a current message exists; False when the source is exhausted."""
        if self.pending:
            return True
        if self.error is not None:
            raise self.error
        return self._take_valid()

    def peek_envelope(self) -> bytes:
        """Return the next message's envelope to pipeline, or b"" when there is none yet."""
        if len(self.pending) < 2 and not self._take_valid():
            return b""
        return self.pending[1][1]

    def finish(self) -> None:
        """Drop the current message (its outcome is known)."""
        self.pending.popleft()
        self.attempt = 1

    def flush_early(self) -> list[tuple[OutgoingMessage, SendResult]]:
        """Return and forget the outcomes decided without talking to the server."""
        early, self.early = self.early, []
        return early

    def _take_valid(self) -> bool:
        """Take messages until one has a valid envelope; refused addresses fail at once."""
        while self.error is None:
            try:
                message = self.take()
            except BaseException as exc:  # re-raised by fill() once the current one is done
                self.error = exc
                return False
            if message is None:
                return False
            try:
                self.pending.append((message, wire.envelope_bytes(message)))
                return True
            except wire.BadAddress as exc:
                result = SendResult(message.key, "permanent", None, str(exc), "rcpt")
                self.early.append((message, result))
        return False


class SmtpTransport(BaseTransport):
    """Send over SMTP with persistent connections, optional parallelism and a rate limit.

    ``connections`` persistent connections each live in their own worker thread (one
    connection runs in the caller's thread, no hand-off). ``rate`` (messages per second) is a
    token bucket shared by all connections; ``connection_rate`` paces each connection on its
    own (a provider's per-connection limit); ``bucket`` adds another one shared by all
    connections, e.g. the global :class:`~newsletter.deliver.ratelimit.RedisTokenBucket`
    every worker shares (or a test's). ``claim_batch``: messages the dispatcher claims and
    records per transaction (1: at most two in the crash window per connection).
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        connections: int = 1,
        rate: float | None = None,
        bucket: Bucket | None = None,
        connection_rate: float | None = None,
        claim_batch: int = 1,
    ) -> None:
        if connections < 1:
            raise TransportConfigError(f"connections must be >= 1, got {connections}")
        if claim_batch < 1:
            raise TransportConfigError(f"batch must be >= 1, got {claim_batch}")
        self.claim_batch = claim_batch
        self.settings = settings
        self.connections = connections
        self.bucket = chain(TokenBucket(rate) if rate else None, bucket)
        self._own = [
            TokenBucket(connection_rate) if connection_rate else None for _ in range(connections)
        ]
        self._pool = [SmtpConnection(settings) for _ in range(connections)]
        self._work: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one message on the first connection, in the caller's thread."""
        self._paced(message, 0)
        return self._pool[0].send(message)

    def send_many(
        self, messages: Iterable[OutgoingMessage], *, on_result: OnResult | None = None
    ) -> list[SendResult]:
        """Send messages over all connections with a bounded number in flight."""
        if self._closed:
            raise RuntimeError("transport is closed")
        if self.connections == 1:
            source = iter(messages)
            results = []
            for _, result in self._pool[0].stream(lambda: self._paced(next(source, None), 0)):
                results.append(result)
                if on_result is not None:
                    on_result(result)
            return results
        self._start_workers()
        return self._send_threaded(iter(messages), on_result)

    def _send_threaded(
        self, source: Iterator[OutgoingMessage], on_result: OnResult | None
    ) -> list[SendResult]:
        """Feed the workers at most two messages per connection ahead; report in this thread."""
        done: queue.SimpleQueue[SendResult] = queue.SimpleQueue()
        results: list[SendResult] = []
        window, in_flight, exhausted = 2 * self.connections, 0, False
        while True:
            while not exhausted and in_flight < window:
                message = next(source, None)
                if message is None:
                    exhausted = True
                    break
                self._work.put(_Job(message, done))
                in_flight += 1
            if in_flight == 0:
                return results
            result = done.get()
            in_flight -= 1
            results.append(result)
            if on_result is not None:
                on_result(result)

    def _paced(self, message: OutgoingMessage | None, index: int) -> OutgoingMessage | None:
        """Wait for the connection's own token, then for the shared ones."""
        if message is not None:
            own = self._own[index]
            if own is not None:
                own.acquire()
            if self.bucket is not None:
                self.bucket.acquire()
        return message

    def _start_workers(self) -> None:
        while len(self._threads) < self.connections:
            conn = self._pool[len(self._threads)]
            index = len(self._threads)
            thread = threading.Thread(target=self._worker, args=(conn, index), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _worker(self, conn: SmtpConnection, index: int) -> None:
        """Stream jobs from the shared queue on one connection until told to stop."""
        while (first := self._work.get()) is not None:
            feed = _Feed(self._work, first, lambda m: self._paced(m, index))
            try:
                for message, result in conn.stream(feed.take):
                    feed.job_for(message).done.put(result)
            except BaseException as exc:  # never leave the caller waiting for a result
                for job in feed.unfinished():
                    detail = f"internal: {exc!r}"
                    job.done.put(SendResult(job.message.key, "transient", None, detail))

    def close(self) -> None:
        """Stop the workers and say QUIT on every connection."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._work.put(None)
        for thread in self._threads:
            thread.join(timeout=self.settings.timeout + 5)
        for conn in self._pool:
            conn.close()
