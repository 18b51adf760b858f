"""What the report reads: slots with their human clicks, engaged items per window, plain rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, text

from newsletter.store import outcomes
from newsletter.tables import campaign_table


def test_a_slot_is_clicked_when_a_person_clicked_that_position(
    simulated: tuple[Engine, str],
) -> None:
    """Against a direct count: machine clicks and clicks on other positions do not count."""
    engine, _ = simulated
    with engine.connect() as c:
        runs = [int(r) for r in c.execute(text("SELECT id FROM run")).scalars()]
        expected = {
            (int(m), int(p))
            for m, p in c.execute(
                text(
                    "SELECT DISTINCT e.message_id, e.slot_position FROM event e"
                    " JOIN message m ON m.id = e.message_id WHERE e.kind = 'click'"
                    " AND e.is_machine = false AND m.status = 'sent'"
                    " AND e.slot_position IS NOT NULL"
                )
            )
        }
        machine_only = c.execute(
            text(
                "SELECT count(*) FROM event e WHERE e.kind = 'click' AND e.is_machine = true"
                " AND NOT EXISTS (SELECT 1 FROM event h WHERE h.message_id = e.message_id"
                " AND h.slot_position = e.slot_position AND h.kind = 'click'"
                " AND h.is_machine = false)"
            )
        ).scalar()
        slots = c.execute(
            text(
                "SELECT count(*) FROM slot s JOIN message m ON m.id = s.message_id"
                " WHERE m.status = 'sent'"
            )
        ).scalar()
    frame = outcomes.slot_outcomes(engine, run_ids=runs)
    got = frame[frame["clicked"] == 1]
    assert set(zip(got["message_id"], got["position"], strict=True)) == expected
    assert len(expected) > 10 and machine_only and machine_only > 0
    assert len(frame) == slots and frame["clicked"].isin([0, 1]).all()
    assert frame["message_id"].is_monotonic_increasing


def test_engaged_items_of_each_window_match_one_query_per_window(
    simulated: tuple[Engine, str],
) -> None:
    engine, _ = simulated
    with engine.connect() as c:
        newest = c.execute(text("SELECT max(occurred_at) FROM interaction")).scalar()
    end = datetime.fromisoformat(str(newest)).replace(tzinfo=UTC)
    windows = {k: (end - timedelta(days=7 * k + 10), end - timedelta(days=7 * k)) for k in range(4)}
    windows[9] = (end + timedelta(days=1), end + timedelta(days=2))  # nothing there
    engaged = outcomes.engaged_items(engine, windows=windows)
    x = outcomes.X
    with engine.connect() as c:
        for key, (start, stop) in windows.items():
            query = select(x.item_id).where(x.occurred_at >= start, x.occurred_at < stop)
            assert engaged[key] == {int(i) for i in c.execute(query.distinct()).scalars()}
    assert engaged[9] == set() and len(engaged[0]) > 5 and engaged[0] != engaged[3]


def test_plain_rows_are_the_drivers_tuples_with_parameters_bound(engine: Engine) -> None:
    """On SQLite and PostgreSQL: an IN list, text and a time parameter are bound as usual."""
    c = campaign_table.c
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for n, name in enumerate(("a", "b", "c")):
            conn.execute(
                campaign_table.insert().values(
                    name=name, template_name="digest", config={}, created_at=now - timedelta(n)
                )
            )
    query = select(c.name, c.template_name).where(
        c.name.in_(["a", "b", "c"]), c.template_name == "digest", c.created_at < now
    )
    with engine.connect() as conn:
        rows = outcomes.plain_rows(conn, query)
    assert sorted(rows) == [("b", "digest"), ("c", "digest")]
    assert all(type(r) is tuple for r in rows)
