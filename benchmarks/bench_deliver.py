"""Benchmark delivery: messages per second from one process to Postfix's ``smtp-sink``.

Measures ``SmtpTransport.send_many`` beside a bare ``smtplib`` loop (``sendmail`` on persistent
connections, one thread per connection) sending the same pre-rendered ~25 KB messages over the
same number of connections, interleaved in the same run; each figure is the best of
``--repeat`` rounds. Needs ``smtp-sink`` (Debian package ``postfix``); the script starts it::

    python benchmarks/bench_deliver.py                     # 20,000 messages, 1 and 4 connections
    python benchmarks/bench_deliver.py --messages 5000 --connections 1 2 4 8

Targets (issue 6): >= 1,500 msg/s and >= 90% of the bare loop.
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from email.policy import SMTP

from newsletter.deliver import OutgoingMessage, SmtpSettings, SmtpTransport

SENDER = "news@bench.test"


def find_smtp_sink() -> str | None:
    """Return the smtp-sink executable (it lives in /usr/sbin, often not on PATH)."""
    return shutil.which("smtp-sink") or next(
        (p for p in ("/usr/sbin/smtp-sink", "/usr/lib/postfix/smtp-sink") if os.access(p, os.X_OK)),
        None,
    )


def start_sink(executable: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``smtp-sink -u nobody -c 127.0.0.1:PORT 1000`` on a free port, wait for it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [executable, "-u", "nobody", "-c", f"127.0.0.1:{port}", "1000"]
    sink = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sink.poll() is not None:
            raise SystemExit(
                f"smtp-sink exited: {sink.stderr.read().decode() if sink.stderr else ''}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return sink, port
        except OSError:
            time.sleep(0.05)
    sink.kill()
    raise SystemExit("smtp-sink did not start listening within 10 s")


def prerender(count: int, size: int) -> list[OutgoingMessage]:
    """Build ``count`` distinct multipart messages of about ``size`` bytes each."""
    msg = EmailMessage()
    msg["From"] = f"Newsletter <{SENDER}>"
    msg["To"] = "TO_PLACEHOLDER"
    msg["Subject"] = "Your weekly picks"
    msg["Message-ID"] = "MID_PLACEHOLDER"
    line = "A recommended item with a title, a teaser and a link https://n.example/c/tok\n"
    text = line * max(1, size // 2 // len(line))
    msg.set_content(text)
    msg.add_alternative("<p>" + text.replace("\n", "</p>\n<p>") + "</p>", subtype="html")
    template = msg.as_bytes(policy=SMTP)
    out = []
    for i in range(count):
        rcpt = f"subscriber{i}@example.test"
        data = template.replace(b"TO_PLACEHOLDER", rcpt.encode(), 1).replace(
            b"MID_PLACEHOLDER", f"<bench.{i}@bench.test>".encode(), 1
        )
        out.append(OutgoingMessage(i, SENDER, [rcpt], data))
    return out


def bare_loop(port: int, messages: list[OutgoingMessage], connections: int) -> float:
    """Send with plain ``smtplib.sendmail``, one thread per connection; return elapsed seconds."""
    shares = [messages[i::connections] for i in range(connections)]

    def work(share: list[OutgoingMessage]) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            for m in share:
                smtp.sendmail(m.sender, list(m.recipients), m.data)

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(s,)) for s in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def ours(port: int, messages: list[OutgoingMessage], connections: int) -> float:
    """Send with ``SmtpTransport.send_many``; return elapsed seconds (all must be sent)."""
    settings = SmtpSettings(host="127.0.0.1", port=port, timeout=30)
    started = time.perf_counter()
    with SmtpTransport(settings, connections=connections) as transport:
        results = transport.send_many(messages)
    elapsed = time.perf_counter() - started
    failed = [r for r in results if r.status != "sent"]
    if failed or len(results) != len(messages):
        raise SystemExit(f"{len(failed)} messages not sent, first: {failed[:1]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print one line per connection count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=25_000, help="approximate bytes per message")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    executable = find_smtp_sink()
    if executable is None:
        print("SKIP: smtp-sink not found; install it with `apt-get install postfix`.")
        return 0
    messages = prerender(args.messages, args.size)
    size = sum(len(m.data) for m in messages) / len(messages)
    print(
        f"{len(messages)} messages of {size / 1000:.1f} KB, best of {args.repeat}, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    sink, port = start_sink(executable)
    try:
        for conns in args.connections:
            bare = ours_rate = 0.0
            for _ in range(args.repeat):  # interleave, so drift hits both sides alike
                bare = max(bare, len(messages) / bare_loop(port, messages, conns))
                ours_rate = max(ours_rate, len(messages) / ours(port, messages, conns))
            print(
                f"connections={conns}: bare smtplib {bare:7.0f} msg/s | SmtpTransport "
                f"{ours_rate:7.0f} msg/s | ratio {ours_rate / bare:6.1%}"
            )
    finally:
        sink.terminate()
        sink.wait(timeout=5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
