"""ranker = "clicks": the planner ranks with a click model learned from the emails' own slots."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, text

from newsletter.plan.campaigns import parse_campaign_config
from newsletter.plan.sources import FACTORIES, clicks_slot_source, default_slot_source
from newsletter.recommend.clickrank import ClickRanker
from newsletter.simulate.loop import FIRST_SEND, SimulationConfig, simulate
from newsletter.simulate.params import load_world
from newsletter.store.exposures import load_exposures
from newsletter.store.matrices import Matrices, load_matrices

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recommend"))
from test_recommend_clicks import fresh_click_log, fresh_world

CONFIG = parse_campaign_config({"ranker": "clicks"}, campaign="weekly")


def fresh_matrices(**fields: object) -> tuple[Matrices, datetime]:
    data, catalog, send = fresh_world()
    m = Matrices(data, catalog, np.arange(data.n_users), np.arange(data.n_items))
    return replace(m, **fields), datetime.fromtimestamp(send + 2 * 86400, UTC)


def test_without_feedback_the_clicks_ranker_is_the_hybrid() -> None:
    """No log (or too few clicks): the same slot source, ranking for ranking."""
    m, now = fresh_matrices()
    thin = fresh_click_log(messages=100)
    for matrices in (m, replace(m, exposures=thin)):
        parts = clicks_slot_source(matrices, CONFIG, now)
        plain = default_slot_source(matrices, CONFIG, now)
        users = np.arange(20)
        got = parts.source.candidates("top_picks", users, 4)
        want = plain.source.candidates("top_picks", users, 4)
        assert np.array_equal(got.items, want.items) and got.source == want.source == "hybrid"


def test_a_log_where_fresh_items_are_clicked_puts_fresh_items_on_top() -> None:
    """Fresh (odd) items clicked five times more: the learned ranking sends them first, never
    anything the subscriber consumed."""
    m, now = fresh_matrices(exposures=fresh_click_log())
    parts = clicks_slot_source(m, CONFIG, now)
    ranker = parts.source.ranker
    assert isinstance(ranker, ClickRanker) and ranker.learned
    users = np.arange(20)
    top = parts.source.candidates("top_picks", users, 4)
    assert top.source == "click-ranker"
    assert np.mean(top.items[top.items >= 0] % 2 == 1) > 0.9
    for u in users:
        assert not set(top.items[u].tolist()) & set(parts.history[u].indices.tolist())
    assert FACTORIES["clicks"] is clicks_slot_source


def test_exposures_are_the_sent_slots_and_their_human_clicks(sqlite_engine: Engine) -> None:
    """A simulated campaign run with ranker "clicks": the log read back matches the tables,
    and once the emails have enough clicks the runs rank with the click model."""
    world = load_world("news").with_overrides(
        catalogue={"initial_items": 150, "items_per_week": 50}, reading={"history_weeks": 2}
    )
    config = SimulationConfig(
        world=world, subscribers=700, weeks=4, seed=3, workers=1, ranker="clicks"
    )
    url = sqlite_engine.url.render_as_string(hide_password=False)
    simulate(engine=sqlite_engine, config=config, database_url=url)
    m = load_matrices(sqlite_engine)
    since = FIRST_SEND - timedelta(days=1)
    log = load_exposures(sqlite_engine, m, campaign="weekly-digest", since=since)
    other = load_exposures(sqlite_engine, m, campaign="another", since=since)
    with sqlite_engine.connect() as c:
        slots = c.execute(
            text(
                "SELECT count(*) FROM slot s JOIN message m ON m.id = s.message_id"
                " WHERE m.status = 'sent'"
            )
        ).scalar()
        clicked = c.execute(
            text(
                "SELECT count(DISTINCT e.message_id || ':' || e.slot_position) FROM event e"
                " JOIN message m ON m.id = e.message_id WHERE e.kind = 'click'"
                " AND e.is_machine = 0 AND m.status = 'sent' AND e.slot_position IS NOT NULL"
            )
        ).scalar()
        explored = c.execute(
            text(
                "SELECT count(*) FROM slot s JOIN message m ON m.id = s.message_id"
                " WHERE m.status = 'sent' AND s.source = 'explore'"
            )
        ).scalar()
        sources = {r[0] for r in c.execute(text("SELECT DISTINCT source FROM slot"))}
    assert len(log.user_idx) == slots and int(log.clicked.sum()) == clicked > 100
    assert len(other.user_idx) == 0  # another campaign's log is its own
    assert int(log.randomised.sum()) == explored > 0
    first = FIRST_SEND.timestamp()
    assert log.position.min() == 0 and log.sent_at.min() > first - 86400
    assert log.sent_at.max() < first + 4 * 7 * 86400
    assert "click-ranker" in sources  # a later run learned from the earlier runs' clicks
