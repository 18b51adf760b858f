"""RFC 3464 delivery status notifications and RFC 5965 abuse reports, parsed from mail files.

The fixtures follow the RFCs' examples (a Postfix-style DSN with a hard and a delayed
recipient, an ARF report with the returned message); written from the RFCs, not downloaded.
"""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime
from pathlib import Path

from newsletter.track.dsn import parse_report, read_messages

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 6, tzinfo=UTC)
MID = "<nl.7.0123456789ab@example.com>"


def raw(name: str, email: str = "reader@example.com") -> bytes:
    text = (FIXTURES / name).read_bytes()
    return text.replace(b"__EMAIL__", email.encode()).replace(b"__MESSAGE_ID__", MID.encode())


def test_a_dsn_gives_a_bounce_and_a_soft_bounce_with_the_returned_message_id() -> None:
    items = parse_report(raw("dsn_postfix.eml"), now=NOW)
    assert [(i.kind, i.email, i.message_id) for i in items] == [
        ("bounce", "reader@example.com", MID),
        ("soft_bounce", "other@example.org", MID),
    ]
    assert items[0].occurred_at == datetime(2026, 11, 2, 9, 3, 10, tzinfo=UTC)
    assert "User unknown" in (items[0].detail or "")
    assert items[0].external_id == "dsn:20261102090311.B0A1C2D3@mx.example.org:reader@example.com"


def test_an_arf_report_is_a_complaint_for_the_original_recipient() -> None:
    [item] = parse_report(raw("arf_abuse.eml"), now=NOW)
    assert (item.kind, item.email, item.message_id, item.detail) == (
        "complaint",
        "reader@example.com",
        MID,
        "abuse",
    )
    assert item.occurred_at == datetime(2026, 11, 5, 9, 55, tzinfo=UTC)


def test_not_spam_reports_and_ordinary_mail_say_nothing() -> None:
    not_spam = raw("arf_abuse.eml").replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam")
    assert parse_report(not_spam, now=NOW) == []
    plain = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nHello\r\n"
    assert parse_report(plain, now=NOW) == []
    assert parse_report(b"\x00\xff garbage", now=NOW) == []


def test_read_messages_from_a_file_an_mbox_a_maildir_and_a_folder(tmp_path: Path) -> None:
    one = tmp_path / "one.eml"
    one.write_bytes(raw("dsn_postfix.eml"))
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    box.add(raw("dsn_postfix.eml"))
    box.add(raw("arf_abuse.eml"))
    box.flush()
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    maildir.add(raw("arf_abuse.eml"))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.eml").write_bytes(raw("arf_abuse.eml"))
    (folder / "b.eml").write_bytes(raw("dsn_postfix.eml"))
    kinds = {}
    for path in (one, tmp_path / "bounces.mbox", tmp_path / "Maildir", folder):
        kinds[path.name] = [
            [i.kind for i in parse_report(data, now=NOW)] for _, data in read_messages(path)
        ]
    assert kinds == {
        "one.eml": [["bounce", "soft_bounce"]],
        "bounces.mbox": [["bounce", "soft_bounce"], ["complaint"]],
        "Maildir": [["complaint"]],
        "folder": [["complaint"], ["bounce", "soft_bounce"]],
    }
