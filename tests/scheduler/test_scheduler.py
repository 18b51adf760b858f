"""The scheduler's own jobs, driven by a fake clock: a Monday 08:00 local digest reaches Paris,
New York and Tokyo at their own 08:00, before and after Europe's DST change, with one run per
week and nothing typed after start (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update
from trigger_world import SETTINGS, seed_shop

from newsletter import scheduler
from newsletter.db import session_scope
from newsletter.models import Campaign, Run, Subscriber
from newsletter.tables import message_table, subscriber_table

ZONES = {"s1": "Europe/Paris", "s2": "America/New_York", "s3": "Asia/Tokyo"}
EXPECTED = {  # UTC instants of 08:00 local on Monday 23 and Monday 30 March 2026
    "s1": [datetime(2026, 3, 23, 7, tzinfo=UTC), datetime(2026, 3, 30, 6, tzinfo=UTC)],
    "s2": [datetime(2026, 3, 23, 12, tzinfo=UTC), datetime(2026, 3, 30, 12, tzinfo=UTC)],
    "s3": [datetime(2026, 3, 22, 23, tzinfo=UTC), datetime(2026, 3, 29, 23, tzinfo=UTC)],
}


def _world(engine: Engine) -> None:
    seed_shop(engine, campaigns={})
    with engine.begin() as c:
        for key, tz in ZONES.items():
            c.execute(
                update(Subscriber).where(Subscriber.external_key == key).values(timezone=tz)  # type: ignore[arg-type]
            )
    with session_scope(engine) as s:
        s.add(
            Campaign(
                name="weekly",
                template_name="digest",
                segment_name="everyone",
                schedule="0 8 * * mon",
                config={"ranker": "popularity", "n_items": 4, "arms": {"popular": 0.0}},
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )


def test_jobs_are_stored_in_the_database(sqlite_engine: Engine) -> None:
    built = scheduler.build_scheduler(engine=sqlite_engine)
    built.start(paused=True)
    try:
        assert sorted(j.id for j in built.get_jobs()) == ["digests", "release", "triggers"]
        assert all(j.misfire_grace_time == scheduler.MISFIRE_GRACE for j in built.get_jobs())
    finally:
        built.shutdown(wait=False)
    again = scheduler.build_scheduler(engine=sqlite_engine)  # a restart replaces, never doubles
    again.start(paused=True)
    try:
        assert len(again.get_jobs()) == 3
    finally:
        again.shutdown(wait=False)


def test_monday_0800_local_in_three_zones_across_dst(engine: Engine) -> None:
    _world(engine)
    clock = {"now": datetime(2026, 3, 22, 12, tzinfo=UTC)}
    scheduler.configure(engine=engine, settings=SETTINGS, clock=lambda: clock["now"])
    for week in (0, 7):
        clock["now"] = datetime(2026, 3, 22, 12, tzinfo=UTC) + timedelta(days=week)
        end = clock["now"] + timedelta(hours=28)
        while clock["now"] <= end:
            for job in scheduler.FUNCTIONS.values():
                job()
            clock["now"] += timedelta(minutes=30)
    m = message_table.c
    s = subscriber_table.c
    with engine.connect() as c:
        runs = c.execute(select(Run.scheduled_for).order_by(Run.scheduled_for)).scalars().all()  # type: ignore[call-overload]
        rows = c.execute(
            select(s.external_key, m.sent_at, m.status)
            .join(subscriber_table, s.id == m.subscriber_id)
            .order_by(m.sent_at)
        ).all()
    assert runs == [datetime(2026, 3, 23, 8, tzinfo=UTC), datetime(2026, 3, 30, 8, tzinfo=UTC)]
    for key, expected in EXPECTED.items():
        assert [r[1] for r in rows if r[0] == key] == expected
        assert {r[2] for r in rows if r[0] == key} == {"sent"}
