"""Real scheduler processes on one PostgreSQL database: two started together create one run
per (campaign, scheduled_for) and send each message once; a restart between planning and
sending neither loses nor repeats the run (``newsletter scheduler --once --at``)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, insert, select, text, update
from test_scheduler import _world
from trigger_world import LOOSE, NOW

from newsletter.db import session_scope
from newsletter.models import Campaign, Item, Subscriber
from newsletter.tables import (
    campaign_table,
    interaction_table,
    message_table,
    run_table,
    subscriber_table,
)
from testsupport import POSTGRES_URL, REPO_ROOT, STRONG_SECRET

pytestmark = pytest.mark.postgres
PLANNED_AT = "2026-03-22T17:00"  # the digest of Monday 23 March 08:00 local is planned
TIMEOUT = 180


def _env(engine: Engine, tmp: str) -> dict[str, str]:
    with engine.connect() as c:
        schema = c.execute(text("select current_schema()")).scalar_one()
    url = f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}"
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "NEWSLETTER_DATABASE_URL": url,
        "NEWSLETTER_SMTP_URL": f"outbox:{tmp}/outbox",
        "NEWSLETTER_SECRET_KEY": STRONG_SECRET,
        "NEWSLETTER_CONFIG": f"{tmp}/none.toml",
    }


def _start(env: dict[str, str], at: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "newsletter", "scheduler", "--once", "--at", at]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _finish(*processes: subprocess.Popen[bytes]) -> None:
    for p in processes:
        out, _ = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, out.decode()


def _runs(engine: Engine) -> list[tuple[str, datetime]]:
    r, c_ = run_table.c, campaign_table.c
    with engine.connect() as c:
        rows = c.execute(
            select(c_.name, r.scheduled_for)
            .join(campaign_table, c_.id == r.campaign_id)
            .order_by(c_.name, r.scheduled_for)
        ).all()
    return [(str(n), when) for n, when in rows]


def _sent(engine: Engine) -> dict[str, list[datetime | str]]:
    """Per subscriber key: when each message was sent, or its status when it was not."""
    m, s = message_table.c, subscriber_table.c
    with engine.connect() as c:
        rows = c.execute(
            select(s.external_key, m.sent_at, m.status)
            .join(subscriber_table, s.id == m.subscriber_id)
            .order_by(s.external_key, m.id)
        ).all()
    out: dict[str, list[datetime | str]] = {}
    for key, sent_at, status in rows:
        out.setdefault(str(key), []).append(sent_at if status == "sent" else str(status))
    return out


def _add_cart(engine: Engine, at: datetime) -> None:
    """A cart trigger campaign and s4's cart of jazz-1 an hour and a half before `at`."""
    with session_scope(engine) as s:
        config = {"ranker": "popularity", "n_items": 3, "arms": {"popular": 0.0}}
        trigger = {"kind": "abandoned_cart", "delay_hours": 1}
        s.add(
            Campaign(
                name="cart",
                kind="trigger",
                template_name="trigger",
                config={**config, "trigger": trigger, "cadence": LOOSE},
                created_at=NOW - timedelta(days=400),
            )
        )
    with engine.begin() as c:
        sid = c.execute(select(Subscriber.id).where(Subscriber.external_key == "s4")).scalar_one()  # type: ignore[call-overload,arg-type]
        item = c.execute(select(Item.id).where(Item.external_key == "jazz-1")).scalar_one()  # type: ignore[call-overload,arg-type]
        values = {"kind": "cart", "occurred_at": at - timedelta(minutes=90), "source": "events"}
        c.execute(insert(interaction_table).values(subscriber_id=sid, item_id=item, **values))
        c.execute(update(subscriber_table).where(Subscriber.id == sid).values(timezone="UTC"))  # type: ignore[attr-defined,arg-type]


def test_two_scheduler_processes_create_one_run_and_send_once(pg_engine: Engine, tmp_path) -> None:
    _world(pg_engine)
    at = datetime.fromisoformat(PLANNED_AT).replace(tzinfo=UTC)
    _add_cart(pg_engine, at)
    env = _env(pg_engine, str(tmp_path))
    _finish(_start(env, PLANNED_AT), _start(env, PLANNED_AT))
    assert _runs(pg_engine) == [("cart", at), ("weekly", datetime(2026, 3, 23, 8, tzinfo=UTC))]
    sent = _sent(pg_engine)
    assert sent.pop("s4") == ["planned", at]  # its cart message, sent once by one of the two
    assert sent.pop("s5") == ["skipped"]  # s5 has read every item: nothing to recommend
    assert sent == {"s1": ["planned"], "s2": ["planned"], "s3": ["planned"]}  # until 08:00
    outbox = list((tmp_path / "outbox").iterdir())
    assert len(outbox) == 1


def test_a_restart_between_planning_and_sending_yields_one_run(pg_engine: Engine, tmp_path) -> None:
    _world(pg_engine)
    env = _env(pg_engine, str(tmp_path))
    _finish(_start(env, PLANNED_AT))  # plans the run, sends nothing yet
    assert _runs(pg_engine) == [("weekly", datetime(2026, 3, 23, 8, tzinfo=UTC))]
    waiting = {"s1": ["planned"], "s2": ["planned"], "s3": ["planned"], "s4": ["planned"]}
    assert _sent(pg_engine) == {**waiting, "s5": ["skipped"]}  # s5 has read every item
    _finish(_start(env, "2026-03-23T07:00"))  # a new process: Tokyo (due 23:00) and Paris
    _finish(_start(env, "2026-03-23T12:00"))  # and again: New York's 08:00
    assert _runs(pg_engine) == [("weekly", datetime(2026, 3, 23, 8, tzinfo=UTC))]
    seven, noon = datetime(2026, 3, 23, 7, tzinfo=UTC), datetime(2026, 3, 23, 12, tzinfo=UTC)
    expected = {"s1": [seven], "s2": [noon], "s3": [seven], "s4": [noon], "s5": ["skipped"]}
    assert _sent(pg_engine) == expected  # s4 lives in UTC
    assert len(list((tmp_path / "outbox").iterdir())) == 4
