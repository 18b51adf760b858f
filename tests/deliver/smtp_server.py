"""A real SMTP server for tests, in its own process, that stores every message it accepts.

Importable helper with no pytest dependency (any test folder, benchmark or demo may use it)::

    with start_smtp_server(tmp_path / "mail", flaky_rate=0.2, seed=7) as server:
        send_to("127.0.0.1", server.port)
        assert server.count_by_recipient() == {...}

It is also a script (``python tests/deliver/smtp_server.py --dir D --ready-file F``), which
is how ``start_smtp_server`` runs it: the server lives in a separate process, independent of
whichever process sends, so a sender can be killed with SIGKILL and resumed while the server
keeps counting. Each accepted message is written atomically to ``DIR/<uuid>.eml`` with two
extra leading headers, ``X-Envelope-From`` and ``X-Envelope-To``, carrying the envelope.

Faults, drawn from a seeded random source: ``flaky_rate`` answers 421 (then closes) or 451 at
MAIL, RCPT and DATA; ``drop_rate`` closes the connection without an answer at those stages
(before the message is stored); ``drop_after_store_rate`` stores the message and then drops
the connection before answering (the ambiguous at-least-once window); ``reject`` answers 550
for the listed recipients; ``delay`` slows every DATA down; ``max_per_connection`` closes a
connection quietly after that many messages (as many real servers do), which exercises the
client's reconnect; ``pipelining=False`` stops advertising PIPELINING. ``X-Peer`` (client
address:port) is stored too, to count connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

ENVELOPE_FROM = "X-Envelope-From"
ENVELOPE_TO = "X-Envelope-To"
PEER = "X-Peer"


@dataclass(frozen=True)
class ReceivedMessage:
    """One message as the server stored it: envelope, Message-ID and the bytes received."""

    path: Path
    mail_from: str
    recipients: tuple[str, ...]
    message_id: str | None
    data: bytes
    peer: str = ""


@dataclass
class SmtpTestServer:
    """Handle on a running server process: its address, its mail folder, and how to stop it."""

    host: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    log_path: Path | None = None

    @property
    def url(self) -> str:
        """Return ``smtp://host:port`` for ``transport_from_url``."""
        return f"smtp://{self.host}:{self.port}"

    def received(self) -> list[ReceivedMessage]:
        """Read back every message stored so far."""
        return read_received(self.directory)

    def count_by_message_id(self) -> Counter[str | None]:
        """Count stored messages per Message-ID header (a duplicate shows up as 2)."""
        return Counter(m.message_id for m in self.received())

    def count_by_recipient(self) -> Counter[str]:
        """Count stored messages per envelope recipient."""
        return Counter(r for m in self.received() for r in m.recipients)

    def wait_for(self, count: int, *, timeout: float = 10.0) -> int:
        """Wait (bounded) until at least ``count`` messages are stored; return how many are."""
        deadline = time.monotonic() + timeout
        while (n := len(_message_files(self.directory))) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return n

    def stop(self) -> None:
        """Terminate the server process (SIGTERM, then SIGKILL after 5 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def __enter__(self) -> SmtpTestServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_smtp_server(
    directory: str | os.PathLike[str],
    *,
    flaky_rate: float = 0.0,
    drop_rate: float = 0.0,
    drop_after_store_rate: float = 0.0,
    seed: int = 0,
    reject: Iterable[str] = (),
    auth: tuple[str, str] | None = None,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
    implicit_tls: bool = False,
    delay: float = 0.0,
    max_per_connection: int = 0,
    pipelining: bool = True,
    ready_timeout: float = 15.0,
) -> SmtpTestServer:
    """Start the server in a new process on a free loopback port and wait until it listens."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory.parent / f".smtp-ready-{uuid.uuid4().hex}.json"
    log_path = directory.parent / f"smtp-server-{ready.stem[-8:]}.log"
    args = [sys.executable, str(Path(__file__).resolve()), "--dir", str(directory)]
    args += ["--ready-file", str(ready), "--parent-pid", str(os.getpid()), "--seed", str(seed)]
    args += ["--flaky-rate", str(flaky_rate), "--drop-rate", str(drop_rate)]
    args += ["--drop-after-store-rate", str(drop_after_store_rate), "--delay", str(delay)]
    args += ["--max-per-connection", str(max_per_connection)]
    args += [] if pipelining else ["--no-pipelining"]
    for address in reject:
        args += ["--reject", address]
    if auth:
        args += ["--auth", f"{auth[0]}:{auth[1]}"]
    if tls_cert and tls_key:
        args += ["--tls-cert", str(tls_cert), "--tls-key", str(tls_key)]
        args += ["--implicit-tls"] if implicit_tls else []
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    port = _wait_ready(process, ready, log_path, ready_timeout)
    return SmtpTestServer("127.0.0.1", port, directory, process, log_path)


def _wait_ready(process: subprocess.Popen[bytes], ready: Path, log: Path, timeout: float) -> int:
    """Poll (bounded) for the ready file the server writes once it listens; return the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            port = int(json.loads(ready.read_text())["port"])
            ready.unlink(missing_ok=True)
            return port
        if process.poll() is not None:
            raise RuntimeError(f"SMTP test server exited early:\n{log.read_text()}")
        time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"SMTP test server not ready after {timeout} s:\n{log.read_text()}")


def _message_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("[!.]*.eml"))


def read_received(directory: str | os.PathLike[str]) -> list[ReceivedMessage]:
    """Read back the messages a server stored in ``directory`` (envelope headers stripped)."""
    parser = BytesHeaderParser()
    out = []
    for path in _message_files(Path(directory)):
        raw = path.read_bytes()
        head, _, data = raw.partition(b"\r\n\r\n")  # our two envelope lines, then the message
        envelope = parser.parsebytes(head + b"\r\n\r\n")
        headers = parser.parsebytes(data)
        rcpts = tuple(r for r in (envelope[ENVELOPE_TO] or "").split(",") if r)
        message_id = headers["Message-ID"]
        out.append(
            ReceivedMessage(
                path=path,
                mail_from=envelope[ENVELOPE_FROM] or "",
                recipients=rcpts,
                message_id=message_id.strip() if message_id else None,
                data=data,
                peer=envelope[PEER] or "",
            )
        )
    return out


def count_by_message_id(directory: str | os.PathLike[str]) -> Counter[str | None]:
    """Count the messages stored in ``directory`` per Message-ID."""
    return Counter(m.message_id for m in read_received(directory))


def count_by_recipient(directory: str | os.PathLike[str]) -> Counter[str]:
    """Count the messages stored in ``directory`` per envelope recipient."""
    return Counter(r for m in read_received(directory) for r in m.recipients)


def make_self_signed_cert(directory: str | os.PathLike[str]) -> tuple[Path, Path] | None:
    """Write a throwaway certificate for localhost/127.0.0.1; None if no tool can make one.

    Uses the ``cryptography`` package when installed, else the ``openssl`` command.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        _cert_with_cryptography(cert, key)
        return cert, key
    except ImportError:
        pass
    if not shutil.which("openssl"):
        return None
    subj = ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
    cmd = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
    cmd += ["-keyout", str(key), "-out", str(cert), *subj]
    done = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    return (cert, key) if done.returncode == 0 else None


def _cert_with_cryptography(cert_path: Path, key_path: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fmt = serialization.PrivateFormat.PKCS8
    no_pw = serialization.NoEncryption()
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt, no_pw))


# --------------------------------------------------------------------------- server process


class _Handler:
    """aiosmtpd hooks: inject faults, reject listed recipients, store accepted messages."""

    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.rng = random.Random(opts.seed)
        self.reject = {a.lower() for a in opts.reject}
        self.directory = Path(opts.dir)

    def _fault(self, server: Any) -> str | None:
        roll = self.rng.random()
        if roll < self.opts.drop_rate:
            server.transport.close()
            return "421 4.3.2 dropped"  # never reaches the client
        if roll < self.opts.drop_rate + self.opts.flaky_rate:
            if self.rng.random() < 0.5:
                return _answer_and_close(server, "421 4.3.2 flaky: closing connection")
            return "451 4.3.0 flaky: try again later"
        return None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.opts.pipelining:  # aiosmtpd reads pipelined commands fine; advertise it
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if fault := self._fault(server):
            return fault
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return f"550 5.1.1 <{address}>: recipient rejected"
        if fault := self._fault(server):
            return fault
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.opts.delay:
            await asyncio.sleep(self.opts.delay)
        if fault := self._fault(server):
            return fault
        self._store(envelope, session.peer)
        if self.rng.random() < self.opts.drop_after_store_rate:
            server.transport.close()
        session.stored = getattr(session, "stored", 0) + 1
        if self.opts.max_per_connection and session.stored >= self.opts.max_per_connection:
            return _answer_and_close(server, "250 2.0.0 OK: queued, goodbye")
        return "250 2.0.0 OK: queued"

    def _store(self, envelope: Any, peer: Any) -> None:
        head = f"{PEER}: {peer[0]}:{peer[1]}\r\n" if peer else ""
        head += f"{ENVELOPE_FROM}: {envelope.mail_from}\r\n"
        head += f"{ENVELOPE_TO}: {','.join(envelope.rcpt_tos)}\r\n\r\n"
        name = uuid.uuid4().hex
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(head.encode() + envelope.original_content)
        os.replace(tmp, self.directory / f"{name}.eml")


def _answer_and_close(server: Any, reply: str) -> str:
    """Send ``reply``, then close at once: pipelined commands already read get no answer."""
    server.transport.write(reply.encode() + b"\r\n")
    server.transport.close()  # flushes the reply first
    return reply  # aiosmtpd's own push goes nowhere: the transport is closed


def _tls_context(opts: argparse.Namespace) -> ssl.SSLContext | None:
    if not opts.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(opts.tls_cert, opts.tls_key)
    return context


def _protocol_factory(opts: argparse.Namespace, loop: asyncio.AbstractEventLoop) -> Any:
    from aiosmtpd.smtp import SMTP, AuthResult

    handler = _Handler(opts)
    user, _, password = (opts.auth or "").partition(":")

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

    starttls = _tls_context(opts) if not opts.implicit_tls else None

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname="localhost",
            tls_context=starttls,
            authenticator=authenticator if opts.auth else None,
            auth_required=bool(opts.auth),
            auth_require_tls=False,
            loop=loop,
        )

    return factory


async def _serve(opts: argparse.Namespace) -> None:
    """Listen on 127.0.0.1, announce the port in the ready file, run until SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    ssl_ctx = _tls_context(opts) if opts.implicit_tls else None
    server = await loop.create_server(
        _protocol_factory(opts, loop), host="127.0.0.1", port=opts.port, ssl=ssl_ctx
    )
    port = server.sockets[0].getsockname()[1]
    tmp = Path(opts.ready_file + ".tmp")
    tmp.write_text(json.dumps({"port": port, "pid": os.getpid()}))
    os.replace(tmp, opts.ready_file)
    deadline = time.monotonic() + opts.max_seconds
    while not stop.is_set() and time.monotonic() < deadline:
        if opts.parent_pid and not _alive(opts.parent_pid):
            break  # the test run died: do not linger
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)
    server.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="SMTP test server storing messages in a folder")
    p.add_argument("--dir", required=True)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--parent-pid", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=900.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--flaky-rate", type=float, default=0.0)
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument("--drop-after-store-rate", type=float, default=0.0)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--max-per-connection", type=int, default=0)
    p.add_argument("--no-pipelining", dest="pipelining", action="store_false")
    p.add_argument("--reject", action="append", default=[])
    p.add_argument("--auth", default=None, help="user:password; AUTH becomes required")
    p.add_argument("--tls-cert", default=None)
    p.add_argument("--tls-key", default=None)
    p.add_argument("--implicit-tls", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(_serve(_parse_args(None)))
