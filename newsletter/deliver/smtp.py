"""One persistent SMTP connection that sends messages and classifies every failure.

The transaction is driven command by command (MAIL, RCPT, DATA) rather than through
``smtplib.SMTP.sendmail`` so that a dropped connection can be placed exactly: before the end
of DATA a reconnect-and-resend is safe; after it, the server may already hold the message.
"""

from __future__ import annotations

import contextlib
import queue
import smtplib
import ssl
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.deliver.retry import TokenBucket
from newsletter.deliver.transport import (
    BaseTransport,
    OnResult,
    OutgoingMessage,
    SendResult,
    SendStatus,
    Stage,
    TransportConfigError,
)

Security = Literal["none", "starttls", "starttls-required", "tls"]
_DROPS = (smtplib.SMTPServerDisconnected, OSError)
_TRUE = {"1", "true", "yes", "on", "opportunistic"}


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to connect: host, port, TLS mode, credentials, timeout."""

    host: str
    port: int
    security: Security = "none"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    ssl_context: ssl.SSLContext | None = None
    local_hostname: str | None = None


def settings_from_url(
    url: str, *, timeout: float | None = None
) -> tuple[SmtpSettings, Mapping[str, str]]:
    """Parse ``smtp[s]://user:pass@host:port?starttls=…&verify=0`` into settings and options.

    ``starttls=1`` upgrades when the server offers it; ``starttls=required`` refuses to send
    otherwise; ``smtps://`` is implicit TLS (default port 465). ``verify=0`` accepts any
    certificate (local test servers only). Other query keys (``connections``, ``rate``,
    ``timeout``) are returned as options.
    """
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{url!r}: no host; write e.g. smtp://localhost:25")
    query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
    implicit = parts.scheme.lower() == "smtps"
    starttls = query.get("starttls", "").lower()
    if implicit:
        security: Security = "tls"
    elif starttls == "required":
        security = "starttls-required"
    elif starttls in _TRUE:
        security = "starttls"
    elif starttls in ("", "0", "false", "no", "off"):
        security = "none"
    else:
        raise ValueError(f"{url!r}: starttls={starttls!r}; use starttls=1 or starttls=required")
    context = None
    if query.get("verify", "1").lower() in ("0", "false", "no", "off"):
        context = ssl._create_unverified_context()
    try:
        port = parts.port or (465 if implicit else 25)
        seconds = timeout if timeout is not None else float(query.get("timeout", 30))
    except ValueError as exc:
        raise ValueError(f"{url!r}: {exc}") from None
    settings = SmtpSettings(
        host=parts.hostname,
        port=port,
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        timeout=seconds,
        ssl_context=context,
    )
    return settings, query


class _Failure(Exception):
    """A classified failure inside one transaction (internal control flow)."""

    def __init__(self, stage: Stage, code: int | None, detail: str, *, drop: bool = False):
        super().__init__(detail)
        self.stage, self.code, self.detail, self.drop = stage, code, detail, drop


class _BadAddress(ValueError):
    """An envelope address we refuse to put on the wire (non-ASCII or a line break)."""


class _Dropped(Exception):
    """The connection died; ``after_data`` tells whether the whole message had been sent."""

    def __init__(self, detail: str, *, after_data: bool):
        super().__init__(detail)
        self.detail, self.after_data = detail, after_data


class SmtpConnection:
    """A lazily opened, reused SMTP connection; ``send`` never raises for per-message errors."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self._lock = threading.Lock()  # one transaction at a time, whichever thread asks

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one message; reconnect and resend once if the connection dropped before DATA end."""
        with self._lock:
            return self._send(message)

    def _send(self, message: OutgoingMessage) -> SendResult:
        for attempt in (1, 2):
            try:
                smtp = self._smtp or self._connect()
                refused = _transact(smtp, message)
                return SendResult(message.key, "sent", 250, "OK", refused=refused)
            except _BadAddress as exc:  # SMTPUTF8 is not supported
                self._after_failure(False)
                return SendResult(message.key, "permanent", None, str(exc), "rcpt")
            except _Failure as exc:
                self._after_failure(exc.drop)
                permanent = exc.stage != "connect" and 500 <= (exc.code or 0) < 600
                status: SendStatus = "permanent" if permanent else "transient"
                return SendResult(message.key, status, exc.code, exc.detail, exc.stage)
            except _Dropped as exc:
                self._after_failure(True)
                if exc.after_data or attempt == 2:
                    return SendResult(
                        message.key, "transient", None, exc.detail, "data",
                        maybe_delivered=exc.after_data,
                    )  # fmt: skip
        raise AssertionError("unreachable")

    def _connect(self) -> smtplib.SMTP:
        """Open, greet, secure and authenticate a new connection."""
        s = self.settings
        try:
            smtp: smtplib.SMTP
            if s.security == "tls":
                context = s.ssl_context or ssl.create_default_context()
                smtp = smtplib.SMTP_SSL(
                    s.host, s.port, local_hostname=s.local_hostname,
                    timeout=s.timeout, context=context,
                )  # fmt: skip
            else:
                smtp = smtplib.SMTP(
                    s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout
                )
            self._smtp = smtp
            self._secure_and_login(smtp)
            return smtp
        except smtplib.SMTPResponseException as exc:
            self._after_failure(True)
            raise _Failure("connect", exc.smtp_code, _text(exc.smtp_error), drop=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            self._after_failure(True)
            detail = f"cannot connect to {s.host}:{s.port}: {exc}"
            raise _Failure("connect", None, detail, drop=True) from None

    def _secure_and_login(self, smtp: smtplib.SMTP) -> None:
        s = self.settings
        smtp.ehlo()
        if s.security in ("starttls", "starttls-required"):
            if smtp.has_extn("starttls"):
                smtp.starttls(context=s.ssl_context or ssl.create_default_context())
                smtp.ehlo()
            elif s.security == "starttls-required":
                detail = f"{s.host}:{s.port} does not offer STARTTLS (starttls=required)"
                raise _Failure("connect", None, detail, drop=True)
        if s.username is not None:
            _login(smtp, s.username, s.password or "")

    def _after_failure(self, drop: bool) -> None:
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


def _login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """AUTH once with the best offered mechanism (PLAIN, else LOGIN, else smtplib's choice).

    ``smtplib.SMTP.login`` tries every mechanism in turn after a failure, which doubles the
    failed attempts a server counts against us (and hangs some servers on the second try).
    """
    offered = (smtp.esmtp_features.get("auth") or "").upper().split()
    smtp.user, smtp.password = user, password
    for mechanism, answer in (("PLAIN", smtp.auth_plain), ("LOGIN", smtp.auth_login)):
        if mechanism in offered:
            smtp.auth(mechanism, answer)
            return
    smtp.login(user, password)


def _transact(smtp: smtplib.SMTP, message: OutgoingMessage) -> dict[str, tuple[int, str]]:
    """Run one mail transaction on an open connection; return the refused recipients."""
    try:
        if smtp.has_extn("pipelining"):
            refused = _envelope_pipelined(smtp, message)
        else:
            refused = _envelope(smtp, message)
        smtp.send(_dot_stuff(message.data))  # raises only if the final dot was not written
    except _DROPS as exc:
        raise _Dropped(f"connection lost before end of data: {exc!r}", after_data=False) from None
    try:
        code, reply = smtp.getreply()
    except _DROPS as exc:
        raise _Dropped(f"connection lost after end of data: {exc!r}", after_data=True) from None
    _check("data", code, reply, 250)
    return refused


def _envelope(smtp: smtplib.SMTP, message: OutgoingMessage) -> dict[str, tuple[int, str]]:
    """MAIL, RCPT…, DATA with one round trip each, up to the 354 go-ahead."""
    code, reply = smtp.docmd("mail", f"FROM:{_quote(message.sender)}")
    _check("mail", code, reply, 250)
    refused: dict[str, tuple[int, str]] = {}
    for rcpt in message.recipients:
        _note_rcpt(refused, rcpt, *smtp.docmd("rcpt", f"TO:{_quote(rcpt)}"))
    _check_some_accepted(message, refused)
    code, reply = smtp.docmd("data")
    _check("data", code, reply, 354)
    return refused


def _envelope_pipelined(smtp: smtplib.SMTP, message: OutgoingMessage) -> dict[str, tuple[int, str]]:
    """MAIL, RCPT…, DATA in one write and one round trip (RFC 2920 PIPELINING)."""
    lines = [f"MAIL FROM:{_quote(message.sender)}"]
    lines += [f"RCPT TO:{_quote(rcpt)}" for rcpt in message.recipients]
    smtp.send(("\r\n".join(lines) + "\r\nDATA\r\n").encode("ascii"))
    mail = smtp.getreply()
    if mail[0] == 421:
        _check("mail", *mail, 250)  # the server is closing: no more replies will come
    refused: dict[str, tuple[int, str]] = {}
    for rcpt in message.recipients:
        _note_rcpt(refused, rcpt, *smtp.getreply())
    data = smtp.getreply()
    if data[0] == 354 and (mail[0] != 250 or len(refused) == len(message.recipients)):
        smtp.send(b".\r\n")  # some servers say 354 anyway: close the empty transaction
        smtp.getreply()
    _check("mail", *mail, 250)
    _check_some_accepted(message, refused)
    _check("data", *data, 354)
    return refused


def _note_rcpt(refused: dict[str, tuple[int, str]], rcpt: str, code: int, reply: bytes) -> None:
    if code not in (250, 251):
        refused[rcpt] = (code, _text(reply))
        if code == 421:
            _check("rcpt", code, reply, 250)


def _check_some_accepted(message: OutgoingMessage, refused: dict[str, tuple[int, str]]) -> None:
    if len(refused) == len(message.recipients):
        codes = sorted(c for c, _ in refused.values()) or [554]
        detail = "; ".join(f"{r}: {c} {t}" for r, (c, t) in refused.items())
        raise _Failure("rcpt", codes[0], detail or "no recipients")  # a 4xx wins: retry


def _check(stage: Stage, code: int, reply: bytes, expected: int) -> None:
    if code != expected:
        raise _Failure(stage, code, f"{code} {_text(reply)}", drop=code == 421 or code < 0)


def _dot_stuff(data: bytes) -> bytes:
    """Escape leading dots and terminate the DATA section (RFC 5321 §4.5.2).

    ``bytes.replace`` does what smtplib's ``re.sub(rb"(?m)^\\.", …)`` does, 50x faster
    (the regex was the largest cost per 25 KB message in the benchmark).
    """
    q = data.replace(b"\n.", b"\n..")
    if q.startswith(b"."):
        q = b"." + q
    if not q.endswith(b"\r\n"):
        q += b"\r\n"
    return q + b".\r\n"


def _quote(address: str) -> str:
    """Return ``<address>`` for MAIL/RCPT; refuse line breaks (command injection)."""
    if "\r" in address or "\n" in address or not address.isascii():
        raise _BadAddress(f"address {address!r} has a line break or is not plain ASCII")
    if "<" in address:
        return smtplib.quoteaddr(address)  # "Name <addr>": let the stdlib parse it
    return f"<{address}>"


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


class SmtpTransport(BaseTransport):
    """Send over SMTP with persistent connections, optional parallelism and a rate limit.

    ``connections`` persistent smtplib connections each live in their own worker thread (one
    connection runs in the caller's thread, no hand-off). ``rate`` (messages per second) is a
    token bucket shared by all connections; pass ``bucket`` to inject one (tests).
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        connections: int = 1,
        rate: float | None = None,
        bucket: TokenBucket | None = None,
    ) -> None:
        if connections < 1:
            raise TransportConfigError(f"connections must be >= 1, got {connections}")
        self.settings = settings
        self.connections = connections
        self.bucket = bucket or (TokenBucket(rate) if rate else None)
        self._pool = [SmtpConnection(settings) for _ in range(connections)]
        self._work: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one message on the first connection, in the caller's thread."""
        return self._send_on(self._pool[0], message)

    def send_many(
        self, messages: Iterable[OutgoingMessage], *, on_result: OnResult | None = None
    ) -> list[SendResult]:
        """Send messages over all connections with a bounded number in flight."""
        if self._closed:
            raise RuntimeError("transport is closed")
        if self.connections == 1:
            return super().send_many(messages, on_result=on_result)
        self._start_workers()
        done: queue.SimpleQueue[SendResult] = queue.SimpleQueue()
        results: list[SendResult] = []
        window = 2 * self.connections
        in_flight = 0
        source: Iterator[OutgoingMessage] | None = iter(messages)
        while True:
            while source is not None and in_flight < window:
                message = next(source, None)
                if message is None:
                    source = None
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

    def _send_on(self, conn: SmtpConnection, message: OutgoingMessage) -> SendResult:
        if self.bucket is not None:
            self.bucket.acquire()
        return conn.send(message)

    def _start_workers(self) -> None:
        while len(self._threads) < self.connections:
            conn = self._pool[len(self._threads)]
            thread = threading.Thread(target=self._worker, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _worker(self, conn: SmtpConnection) -> None:
        """Send jobs from the shared queue on one connection until told to stop."""
        while (job := self._work.get()) is not None:
            try:
                result = self._send_on(conn, job.message)
            except BaseException as exc:  # never leave the caller waiting for a result
                result = SendResult(job.message.key, "transient", None, f"internal: {exc!r}")
            job.done.put(result)

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


@dataclass(frozen=True, slots=True)
class _Job:
    message: OutgoingMessage
    done: queue.SimpleQueue[SendResult]
