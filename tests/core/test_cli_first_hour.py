"""A newcomer's first hour with their own data, through the real CLI in a fresh folder.

Small CSV pilots plan and send; runs can be found; own segments over custom CSV columns work;
the words say what happened; and no user error ever prints a Python traceback.
"""

from __future__ import annotations

import email
import json
import os
import re
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.db import make_engine
from newsletter.models import Campaign, Message, Run, Slot
from testsupport import STRONG_SECRET

SUBSCRIBERS = "subscriber_key,email,name,plan\n" + "".join(
    f"s{i},s{i}@example.com,Reader {i},{'premium' if i % 2 else 'free'}\n" for i in range(1, 7)
)
ITEMS = "item_key,title,url,topics,published_at\n" + "".join(
    f"i{i},Story {i},https://example.com/{i},{'tech' if i % 2 else 'food'},2026-05-{i:02d}\n"
    for i in range(1, 10)
)
# 3 readers, 4 items, 3 interactions: fewer active readers (2) than engaged items (3), the
# small-data case that crashed the "because you read" anchors (EASE in its dual form).
PILOT = "subscriber_key,item_key,kind,occurred_at\ns1,i1,read,2026-05-20\ns1,i2,read,2026-05-21\n"
PILOT += "s2,i3,click,2026-05-22\n"
# 6 readers, 9 items, 11 interactions, 4 of the readers active over 8 items.
SIX_EVENTS = [(1, 1, 2), (1, 2, 3), (1, 3, 4), (2, 4, 5), (2, 5, 6), (3, 6, 7), (3, 7, 8)]
SIX_EVENTS += [(4, 8, 9), (4, 1, 10), (1, 4, 11), (2, 8, 12)]
SIX = "subscriber_key,item_key,kind,occurred_at\n" + "".join(
    f"s{u},i{i},read,2026-05-{d:02d}\n" for u, i, d in SIX_EVENTS
)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder: the default ./newsletter.db, no NEWSLETTER_* variables but the
    secret key the README's first step exports."""
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", STRONG_SECRET)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def pilot(folder: Path, *, subscribers: int, items: int, interactions: str) -> None:
    (folder / "s.csv").write_text("".join(SUBSCRIBERS.splitlines(True)[: subscribers + 1]))
    (folder / "i.csv").write_text("".join(ITEMS.splitlines(True)[: items + 1]))
    (folder / "x.csv").write_text(interactions)
    code, out = cli("import", "csv", "--subscribers", "s.csv", "--items", "i.csv")
    assert code == 0, out
    code, out = cli("import", "csv", "--interactions", "x.csv")
    assert code == 0, out
    code, out = cli("campaign", "add", "weekly")
    assert code == 0, out


def database(folder: Path) -> tuple[list[tuple[int, str]], int, int]:
    """(run id, status) of every run, sent messages, slots without a reason."""
    engine = make_engine(f"sqlite:///{folder / 'newsletter.db'}")
    with engine.connect() as c:
        runs = [tuple(r) for r in c.execute(select(Run.id, Run.status).order_by(Run.id))]  # type: ignore[call-overload]
        sent = c.execute(
            select(func.count()).select_from(Message).where(Message.status == "sent")  # type: ignore[arg-type]
        ).scalar_one()
        blank = c.execute(
            select(func.count()).select_from(Slot).where(Slot.reason_text == "")  # type: ignore[arg-type]
        ).scalar_one()
    engine.dispose()
    return runs, sent, blank  # type: ignore[return-value]


def valid_emails(outbox: Path) -> int:
    """Every .eml is multipart/alternative, has slots, no broken image, no visible None."""
    files = sorted(outbox.glob("*.eml"))
    for path in files:
        parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
        text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert 'src="None"' not in html and 'src=""' not in html
        assert not re.search(r"\bNone\b", text)
        assert "/t/c/" in text and "Weekly" in text.splitlines()[0]  # the display name
    return len(files)


def test_a_pilot_of_three_readers_runs_and_sends(folder: Path) -> None:
    pilot(folder, subscribers=3, items=4, interactions=PILOT)
    code, out = cli("run", "weekly", "--transport", "outbox:./out", "--send-all")
    assert code == 0, out
    assert "Traceback" not in out
    runs, sent, blank = database(folder)
    assert runs == [(1, "delivered")] and sent == 3 and blank == 0
    assert valid_emails(folder / "out") == 3


def test_plan_then_run_sends_the_planned_run_instead_of_a_second_one(folder: Path) -> None:
    pilot(folder, subscribers=6, items=9, interactions=SIX)
    code, out = cli("plan", "weekly")
    assert code == 0, out
    assert "run 1 of 'weekly': 6 subscribers in the segment; 6 planned, 0 skipped" in out
    assert "send it with `newsletter run resume 1`" in out
    assert "new)" not in out  # no more "planned 4 (5 new)"
    code, out = cli("run", "weekly", "--transport", "outbox:./out", "--send-all")
    assert code == 0, out
    assert "run 1 of 'weekly' (scheduled for" in out and "is planned and not sent yet" in out
    runs, sent, blank = database(folder)
    assert runs == [(1, "delivered")] and sent == 6 and blank == 0
    assert valid_emails(folder / "out") == 6
    code, out = cli("run", "list")
    assert code == 0
    assert re.search(r"^\s+1\s+weekly\s+\S+ \S+ UTC\s+delivered\s+sent 6$", out, re.M), out
    code, out = cli("report")
    assert code == 0 and "Traceback" not in out


def test_run_list_filters_by_campaign_and_lists_counts_by_status(folder: Path) -> None:
    pilot(folder, subscribers=3, items=4, interactions=PILOT)
    code, out = cli("run", "list")
    assert code == 0 and "no runs yet: plan one with `newsletter plan CAMPAIGN`" in out
    cli("campaign", "add", "other")
    cli("plan", "weekly", "--now", "2026-06-01T05:00")
    cli("plan", "other", "--now", "2026-06-01T05:00")
    code, out = cli("run", "list", "weekly", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["id"], r["campaign"], r["status"]) for r in rows] == [(1, "weekly", "planned")]
    assert rows[0]["messages"] == {"planned": 3}
    code, out = cli("plan", "weekly", "--new-run", "--now", "2026-06-08T05:00")
    assert code == 0
    code, out = cli("run", "list", "--json")
    assert [r["id"] for r in json.loads(out)] == [3, 2, 1]  # newest scheduled first


def test_a_second_run_explains_the_caps_and_names_commands_that_exist(folder: Path) -> None:
    pilot(folder, subscribers=3, items=4, interactions=PILOT)
    # Pinned times: both runs send on 1 June (08:00 UTC is the send hour), so the day cap is
    # the first cap broken whatever the wall clock says (after 08:00 the second run's send
    # hour would fall on the next day and the 20-hour min_gap would be reported instead).
    first, second = "2026-06-01T05:00", "2026-06-01T07:00"
    cli("run", "weekly", "--transport", "memory:", "--send-all", "--now", first)
    code, out = cli("run", "weekly", "--transport", "memory:", "--send-all", "--now", second)
    assert code == 0, out
    assert "run 2 of 'weekly'" in out
    assert "skipped: frequency_cap_day 3" in out
    assert "capped subscribers already have a message in run 1 (delivered)" in out
    assert "see `newsletter run list` and `newsletter why SUBSCRIBER --campaign weekly`" in out
    code, out = cli("why", "s1", "--campaign", "weekly")
    assert code == 0 and "cap of 1 messages per day" in out
    code, out = cli("run", "resume", "99")
    assert code == 2 and "list runs with `newsletter run list`" in out


def test_a_new_run_capped_by_a_planned_one_says_how_to_send_that_one(folder: Path) -> None:
    pilot(folder, subscribers=3, items=4, interactions=PILOT)
    cli("plan", "weekly")
    code, out = cli("run", "weekly", "--new-run", "--transport", "memory:", "--send-all")
    assert code == 0, out
    assert "run 2 of 'weekly': 3 subscribers in the segment; 0 planned, 3 skipped" in out
    assert "already have a message in run 1 (planned)" in out
    assert "run 1 is not sent yet: send it with `newsletter run resume 1`" in out


def test_everything_expired_says_why_nothing_can_be_sent(folder: Path) -> None:
    (folder / "s.csv").write_text("subscriber_key,email\ns1,s1@example.com\n")
    (folder / "i.csv").write_text(
        "item_key,title,url,expires_at\ni1,Old,https://example.com/1,2020-01-01\n"
    )
    cli("import", "csv", "--subscribers", "s.csv", "--items", "i.csv")
    cli("campaign", "add", "weekly")
    code, out = cli("run", "weekly", "--transport", "memory:", "--send-all")
    assert code == 1
    error = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "nothing to send: no item could be chosen" in error[0]
    assert "expired" in error[0]


def test_an_own_segment_over_a_custom_csv_column(folder: Path) -> None:
    pilot(folder, subscribers=6, items=9, interactions=SIX)
    (folder / "segments").mkdir()
    (folder / "segments" / "premium.yaml").write_text(
        "description: Readers on the premium plan (the plan column of subscribers.csv).\n"
        "rule:\n  all:\n    - status: active\n    - attribute: {key: plan, equals: premium}\n"
    )
    code, out = cli("segment", "preview", "premium", "--json")
    assert code == 0, out
    assert json.loads(out)["count"] == 3
    code, out = cli("campaign", "add", "premium-weekly", "--segment", "premium")
    assert code == 0, out
    code, out = cli("run", "premium-weekly", "--transport", "outbox:./out", "--send-all")
    assert code == 0, out
    sent = {
        p.read_bytes().split(b"\r\nTo: ")[1].split(b"\r\n")[0]
        for p in (folder / "out").glob("*.eml")
    }
    assert {s.decode().split("<")[-1].rstrip(">") for s in sent} == {
        "s1@example.com",
        "s3@example.com",
        "s5@example.com",
    }


PREMIUM_RULE = (
    "rule:\n  all:\n    - status: active\n    - attribute: {key: plan, equals: premium}\n"
)


def test_own_segments_come_before_the_shipped_ones_and_from_a_configured_folder(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pilot(folder, subscribers=6, items=9, interactions=SIX)
    code, out = cli("segment", "preview", "everyone", "--json")
    assert code == 0 and json.loads(out)["count"] == 6  # the shipped 'everyone'
    (folder / "segments").mkdir()
    (folder / "segments" / "everyone.yaml").write_text(PREMIUM_RULE)
    code, out = cli("segment", "preview", "everyone", "--json")
    assert code == 0 and json.loads(out)["count"] == 3  # ./segments/everyone.yaml wins
    elsewhere = folder / "marketing" / "rules"
    elsewhere.mkdir(parents=True)
    (elsewhere / "paying.yaml").write_text(PREMIUM_RULE)
    code, out = cli("segment", "preview", "paying")
    assert code == 2 and "unknown segment 'paying'" in out
    monkeypatch.setenv("NEWSLETTER_SEGMENTS_DIR", str(elsewhere))
    code, out = cli("segment", "preview", "paying", "--json")
    assert code == 0 and json.loads(out)["count"] == 3
    code, out = cli("segment", "preview", "everyone", "--json")
    assert code == 0 and json.loads(out)["count"] == 6  # ./segments is no longer searched
    code, out = cli("campaign", "add", "paying-weekly", "--segment", "paying")
    assert code == 0, out
    code, out = cli("plan", "paying-weekly")
    assert code == 0 and "3 subscribers in the segment; 3 planned" in out, out
    code, out = cli("why", "s2", "--campaign", "paying-weekly")  # s2 is on the free plan
    assert code == 0 and "they are not in segment 'paying'" in out, out


def test_the_words_say_what_happened(folder: Path) -> None:
    code, out = cli("--help")
    assert code == 0 and "Write a personal email newsletter for every subscriber" in out
    assert "thin shells" not in out
    code, out = cli("sync", "--help")
    assert "[sources.NAME]" in out
    code, out = cli("sync")
    assert code == 2 and "no sources configured: add a [sources.NAME] table" in out
    pilot(folder, subscribers=3, items=4, interactions=PILOT)
    code, out = cli("import", "csv", "--interactions", "x.csv")
    assert code == 0
    assert "interactions: 3 rows read: 0 new, 3 already stored, 0 rejected" in out
    code, out = cli("import", "csv", "--subscribers", "s.csv")
    assert "subscribers: 3 rows read: 0 new, 3 updated, 0 rejected" in out


def test_the_masthead_shows_the_display_name(folder: Path) -> None:
    pilot(folder, subscribers=3, items=4, interactions=PILOT)
    (folder / "letter.yaml").write_text("display_name: The Friday Letter\n")
    code, out = cli("campaign", "add", "friday-letter", "--campaign-config", "letter.yaml")
    assert code == 0, out
    cli("run", "friday-letter", "--transport", "outbox:./out", "--send-all")
    (path, *_) = sorted((folder / "out").glob("*.eml"))
    parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "The Friday Letter" in html and "friday-letter" not in html


@pytest.mark.parametrize("bad", ["every monday", "61 8 * * *", "0 8 * * funday", "* * * *"])
def test_schedule_must_be_a_cron_expression(folder: Path, bad: str) -> None:
    code, out = cli("campaign", "add", "weekly", "--schedule", bad)
    assert code == 2 and out.count("\n") == 1
    assert f"--schedule: schedule {bad!r} is not a cron expression" in out
    assert "'0 8 * * mon'" in out
    code, out = cli("campaign", "add", "weekly", "--schedule", "0 8 * * mon")
    assert code == 0
    engine = make_engine(f"sqlite:///{folder / 'newsletter.db'}")
    with engine.connect() as c:
        assert c.execute(select(Campaign.schedule)).scalars().all() == ["0 8 * * mon"]  # type: ignore[call-overload]
    engine.dispose()


USER_ERRORS = [
    (["why", "1", "--campaign", "nosuch"], "unknown campaign 'nosuch'"),
    (["why", "nobody", "--campaign", "weekly"], "no subscriber with id, email or external key"),
    (["plan", "nosuch"], "unknown campaign 'nosuch'"),
    (["plan", "weekly", "--now", "monday"], "--now 'monday' is not an ISO time"),
    (["run", "nosuch", "--transport", "memory:"], "unknown campaign 'nosuch'"),
    (["run", "weekly", "--transport", "pigeon://x"], "unknown transport"),
    (["run", "resume", "99"], "run 99 does not exist"),
    (["run", "resume", "abc"], "run resume needs a run id, got 'abc'"),
    (["run", "retry-failed"], "run retry-failed needs a run id"),
    (["run", "list", "nosuch"], "unknown campaign 'nosuch'"),
    (["run", "weekly", "extra"], "usage: newsletter run CAMPAIGN"),
    (["report", "99"], "run 99 does not exist"),
    (["preview", "nosuch"], "no template 'nosuch'"),
    (["preview", "digest", "--subscriber", "nobody"], "no subscriber with id, email"),
    (["preview", "digest", "--out", "missing/dir/x.html"], "cannot write missing/dir/x.html"),
    (["send-test", "digest", "--to", "nobody"], "is not an email address"),
    (["import", "csv"], "give at least one of --subscribers"),
    (["import", "csv", "--items", "missing.csv"], "missing.csv: no such file"),
    (["import", "movielens", "missing"], "missing: no ratings.csv"),
    (["segment", "preview", "nosuch"], "unknown segment 'nosuch'"),
    (["campaign", "add", "x", "--segment", "nosuch"], "unknown segment 'nosuch'"),
    (["campaign", "add", "x", "--template", "nosuch"], "no template 'nosuch'"),
    (["campaign", "add", "x", "--campaign-config", "missing.yaml"], "missing.yaml: no such file"),
    (["campaign", "add", "x", "--kind", "weekly"], "--kind 'weekly': expected digest or trigger"),
    (["sync", "--source", "crm"], "no sources configured"),
    (["evaluate", "--data", "missing"], "ratings.csv not found"),
    (["db", "downgrade", "nosuchrev"], "revision 'nosuchrev'"),
]


def test_no_user_error_prints_a_traceback(folder: Path) -> None:
    code, out = cli("report")
    assert code == 2 and out.startswith("error: there are no runs yet")
    code, out = cli("stats", "--json")
    assert code == 0 and json.loads(out) == {"subscribers": 0, "items": 0, "interactions": 0}
    pilot(folder, subscribers=3, items=4, interactions=PILOT)
    for args, expected in USER_ERRORS:
        code, out = cli(*args)
        lines = out.strip().splitlines()
        assert code != 0 and "Traceback" not in out, (args, out)
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, out)
        assert expected in lines[0], (args, out)
