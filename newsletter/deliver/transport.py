"""Transports: one protocol to hand rendered messages to SMTP, an outbox folder or memory.

A transport sends and reports; it never retries beyond reconnecting once when a connection
was found dropped before the message was handed over (the dispatcher owns retry policy, see
``retry.Backoff``). ``send_many`` consumes its iterable lazily *in the calling thread* and calls
``on_result`` in the calling thread too, so a dispatcher can mark each message ``sending`` as
it yields it and record each outcome as it arrives, without touching the database from
worker threads.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.deliver.ratelimit import Bucket
from newsletter.enums import MessageStatus

SendStatus = Literal["sent", "transient", "permanent"]
Stage = Literal["connect", "mail", "rcpt", "data", "write", "memory"]
OnResult = Callable[["SendResult"], None]
Security = Literal["none", "starttls", "starttls-required", "tls"]
_TRUE = {"1", "true", "yes", "on", "opportunistic"}

__all__ = [
    "BaseTransport",
    "MemoryTransport",
    "OutboxTransport",
    "OutgoingMessage",
    "SendResult",
    "SendStatus",
    "SmtpSettings",
    "Transport",
    "TransportConfigError",
    "redact",
    "settings_from_url",
    "transport_from_url",
]


class TransportConfigError(ValueError):
    """A transport URL or option a user wrote is wrong; the message names the input and fix."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One rendered message ready for the wire: envelope plus CRLF-serialized bytes."""

    key: str | int
    sender: str
    recipients: Sequence[str]
    data: bytes


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one send attempt, as the dispatcher records it.

    ``status``: ``sent``; ``transient`` (4xx, dropped connection, timeout, connect failure:
    try again later); ``permanent`` (5xx). ``stage`` says where it happened: only a
    ``permanent`` failure at stage ``rcpt`` means the *address* is bad (bounce + suppress); a
    failure at stage ``connect`` concerns the server or our credentials, not the message, and
    should pause the run rather than burn attempts. ``maybe_delivered`` is true when the
    connection died after the whole message was transmitted but before the server's reply:
    the server may have accepted it (the at-least-once window).
    """

    key: str | int
    status: SendStatus
    code: int | None = None
    detail: str = ""
    stage: Stage | None = None
    maybe_delivered: bool = False
    refused: Mapping[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def bounced(self) -> bool:
        """Tell whether the recipient address was refused for good (suppress it)."""
        return self.status == "permanent" and self.stage == "rcpt"


class Transport(Protocol):
    """What the dispatcher needs from a way of delivering messages."""

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one message and return its outcome (never raises for a per-message failure)."""
        ...

    def send_many(
        self, messages: Iterable[OutgoingMessage], *, on_result: OnResult | None = None
    ) -> list[SendResult]:
        """Send messages, calling ``on_result`` in the caller's thread as outcomes arrive.

        Results arrive in completion order (not input order) when several connections are
        used; the returned list holds them all in that order. If ``on_result`` or the
        iterable raises, messages already handed to a connection (at most two per
        connection) may still be sent: they are in the ``sending`` window.
        """
        ...

    def close(self) -> None:
        """Release connections and threads; the transport cannot be used afterwards."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class BaseTransport:
    """Shared plumbing: serial ``send_many`` in the caller's thread, and the context manager.

    ``claim_batch``: how many messages the dispatcher claims and records per transaction
    with this transport (its crash window per connection; see ``deliver.dispatch``).
    """

    claim_batch: int = 1

    def send(self, message: OutgoingMessage) -> SendResult:
        raise NotImplementedError

    def send_many(
        self, messages: Iterable[OutgoingMessage], *, on_result: OnResult | None = None
    ) -> list[SendResult]:
        """Send each message in turn, reporting each outcome before fetching the next one."""
        results = []
        for message in messages:
            result = self.send(message)
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class MemoryTransport(BaseTransport):
    """Keep sent messages in a list, with programmable failures per recipient, for tests.

    ``failures`` maps a recipient to a status, or to a list of statuses consumed one per
    attempt (``["transient", "transient"]`` fails twice, then sends). ``attempts`` logs
    every result, ``sent`` only the messages that went through. What it holds dies with the
    process, so a crash cannot leave a copy behind: it claims 200 messages at a time.
    """

    claim_batch = 200

    def __init__(self, *, failures: Mapping[str, SendStatus | Sequence[SendStatus]] | None = None):
        self.sent: list[OutgoingMessage] = []
        self.attempts: list[SendResult] = []
        self._failures = {rcpt: _as_script(spec) for rcpt, spec in (failures or {}).items()}
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> SendResult:
        """Record the message as sent unless a programmed failure applies to a recipient."""
        with self._lock:
            result = self._scripted(message) or SendResult(message.key, "sent", 250, "OK")
            if result.status == MessageStatus.sent:
                self.sent.append(message)
            self.attempts.append(result)
        return result

    def _scripted(self, message: OutgoingMessage) -> SendResult | None:
        for rcpt in message.recipients:
            script = self._failures.get(rcpt)
            if script is None:
                continue
            status = script() if callable(script) else script.pop(0) if script else "sent"
            if status == "transient":
                return SendResult(message.key, "transient", 451, f"{rcpt}: try later", "rcpt")
            if status == "permanent":
                return SendResult(message.key, "permanent", 550, f"{rcpt}: no such user", "rcpt")
        return None


def _as_script(spec: SendStatus | Sequence[SendStatus]) -> Callable[[], str] | list[str]:
    if isinstance(spec, str):
        return lambda: spec
    return list(spec)


_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*<([^>\r\n]{1,250})>", re.IGNORECASE | re.MULTILINE)
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]")


def _message_id(data: bytes) -> str | None:
    """The Message-ID of serialized message bytes (header block only), or None."""
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found = _MESSAGE_ID.search(head)
    return found.group(1).decode("ascii", "replace") if found else None


class OutboxTransport(BaseTransport):
    """Write one ``.eml`` file per delivery attempt into a folder, atomically (dry runs, demo).

    A file is named after the message's Message-ID and a sequence number,
    ``<message-id>-<n>.eml`` (``<key>-<n>.eml`` for bytes without one): a message delivered
    twice (a resumed run, a retry after a dropped connection) leaves two files, so the outbox
    is an honest log of what was handed over. ``fsync=True`` also survives power loss, at a
    cost.
    """

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        self.directory.mkdir(parents=True, exist_ok=True)

    def stem_for(self, message: OutgoingMessage) -> str:
        """The file name stem of a message (its Message-ID made file-safe, else its key);
        refuse keys unsafe as file names."""
        name = str(message.key)
        if not _SAFE_KEY.match(name):
            raise ValueError(f"message key {name!r} is not usable as a file name")
        found = _message_id(message.data)
        if found is None:
            return name
        stem = _UNSAFE.sub("_", found)[:200]
        return f"_{stem}" if stem.startswith(".") else stem

    def send(self, message: OutgoingMessage) -> SendResult:
        """Write the message to a temporary file, then link it to the first free name."""
        stem = self.stem_for(message)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".eml")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(message.data)
                    if self.fsync:
                        fh.flush()
                        os.fsync(fh.fileno())
                target = self._link_next(Path(tmp), stem)
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError as exc:
            return SendResult(message.key, "transient", None, f"outbox: {exc}", "write")
        return SendResult(message.key, "sent", 250, str(target), None)

    def _link_next(self, tmp: Path, stem: str) -> Path:
        """Hard-link `tmp` as ``<stem>-<n>.eml`` with the first free n (atomic: never
        replaces a file, even with several writers)."""
        sequence = 1
        while True:
            target = self.directory / f"{stem}-{sequence}.eml"
            try:
                os.link(tmp, target)
                return target
            except FileExistsError:
                sequence += 1


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to connect: host, port, TLS mode, credentials, timeout."""

    host: str
    port: int
    security: Security = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
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
    shown = redact(url)
    if not parts.hostname:
        raise ValueError(f"{shown!r}: no host; write e.g. smtp://localhost:25")
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
        raise ValueError(f"{shown!r}: starttls={starttls!r}; use starttls=1 or starttls=required")
    context = None
    if query.get("verify", "1").lower() in ("0", "false", "no", "off"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        port = parts.port or (465 if implicit else 25)
        seconds = timeout if timeout is not None else float(query.get("timeout", 30))
    except ValueError as exc:
        raise ValueError(f"{shown!r}: {exc}") from None
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


def transport_from_url(
    url: str,
    *,
    connections: int | None = None,
    rate: float | None = None,
    timeout: float | None = None,
    bucket: Bucket | None = None,
) -> Transport:
    """Build a transport from ``smtp://``, ``smtps://``, ``outbox:DIR`` or ``memory:``.

    SMTP URLs: ``smtp://user:pass@host:port?starttls=required&connections=4&rate=100``
    (``rate``: messages per second for the transport as a whole; ``connection_rate``: for
    each connection; ``batch``: messages claimed and recorded per database transaction, 1 by
    default -- N widens the crash window to N per connection); keyword arguments override
    the query string. ``bucket`` adds a limit
    shared with other processes (the global rate limit). See ``settings_from_url``.
    """
    scheme, _, rest = url.partition(":")
    scheme = scheme.lower()
    if scheme in ("smtp", "smtps"):
        from newsletter.deliver.smtp import SmtpTransport

        try:
            settings, options = settings_from_url(url, timeout=timeout)
        except ValueError as exc:
            raise TransportConfigError(str(exc)) from None
        return SmtpTransport(
            settings,
            connections=connections or int(_opt_float("connections", options, url) or 1),
            rate=rate if rate is not None else _opt_float("rate", options, url),
            connection_rate=_opt_float("connection_rate", options, url),
            bucket=bucket,
            claim_batch=int(_opt_float("batch", options, url) or 1),
        )
    if scheme == "outbox":
        directory = rest[2:] if rest.startswith("//") else rest
        if not directory:
            raise TransportConfigError(f"{url!r}: outbox needs a folder, e.g. outbox:./outbox")
        return OutboxTransport(directory)
    if scheme == "memory":
        return MemoryTransport()
    raise TransportConfigError(
        f"unknown transport {redact(url)!r}: "
        "use smtp://host:port, smtps://host:port, outbox:DIR or memory:"
    )


def redact(url: str) -> str:
    """Return the URL with its password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{netloc[1]}").geturl()


def _opt_float(name: str, options: Mapping[str, str], url: str) -> float | None:
    value = options.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise TransportConfigError(f"{redact(url)!r}: {name}={value!r} is not a number") from None
