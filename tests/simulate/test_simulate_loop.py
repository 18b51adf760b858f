"""The closed loop on a small world: real pipeline, real tracking routes, reproducible figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.simulate.loop import SimulationConfig, simulate
from newsletter.simulate.params import load_world
from newsletter.simulate.run import run_simulation
from newsletter.track.bursts import RULES

SMALL = {"count": 200}


def _config(**over: object) -> SimulationConfig:
    world = load_world("news").with_overrides(
        catalogue={"initial_items": 120, "items_per_week": 40}, reading={"history_weeks": 2}
    )
    values = {"world": world, "subscribers": 200, "weeks": 2, "seed": 5, "workers": 2}
    values.update(over)
    return SimulationConfig(**values)  # type: ignore[arg-type]


def test_one_seed_gives_identical_json() -> None:
    a = run_simulation(_config())
    b = run_simulation(_config())
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    c = run_simulation(_config(seed=6))
    assert c["utility"] != a["utility"]
    for key in (
        "arms",
        "lift",
        "lift_ci95",
        "lift_unfiltered",
        "coverage",
        "explore_ctr",
        "exploit_ctr",
        "utility",
    ):
        assert key in a
    assert set(a["arms"]) == {"personalized", "popular"}
    assert {"messages", "human_clicks", "ctr"} <= set(a["arms"]["personalized"])
    assert set(a["utility"]) == {"personalized", "popular", "oracle"}
    assert a["utility"]["oracle"] > max(a["utility"]["personalized"], a["utility"]["popular"])


def _events(engine: Engine) -> dict[tuple[str, bool, str | None], int]:
    query = "SELECT kind, is_machine, machine_reason, count(*) FROM event GROUP BY 1, 2, 3"
    with engine.connect() as c:
        return {(k, bool(m), r): n for k, m, r, n in c.execute(text(query))}


@pytest.mark.parametrize("workers", [1, 2])
def test_recipients_hit_the_real_routes_and_machines_are_flagged(
    engine: Engine, workers: int
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    config = _config(workers=workers, weeks=1)
    result = simulate(engine=engine, config=config, database_url=url)
    events = _events(engine)
    week = result.weeks[0]
    delivered = sum(week.delivered.values())
    assert delivered > 150
    mpp = events.get(("open", True, "apple-mpp"), 0)
    assert 0.1 * delivered < mpp < 0.45 * delivered  # a quarter of readers behind Apple's proxy
    scanner_clicks = sum(n for (k, m, r), n in events.items() if k == "click" and m and r)
    assert scanner_clicks > 0 and any(r and r.startswith("scanner:") for (_, _, r) in events)
    human_clicks = events.get(("click", False, None), 0)
    assert human_clicks >= sum(week.true_clicks.values())  # disguised scanners pass as people
    assert week.requests.get("click 302", 0) > 0 and week.requests.get("mpp 200", 0) == mpp
    with engine.connect() as c:
        agents = {r[0] for r in c.execute(text("SELECT DISTINCT user_agent FROM event"))}
        bounced = c.execute(text("SELECT count(*) FROM message WHERE reason = 'bounced'")).scalar()
        sent = c.execute(text("SELECT count(*) FROM message WHERE status = 'sent'")).scalar()
    assert "Mozilla/5.0" in agents and len(agents) > 5
    assert sent == delivered
    assert bounced is not None and bounced >= 0


def test_unsubscribes_go_through_the_route_and_stop_the_next_digest(sqlite_engine: Engine) -> None:
    world = load_world("news").with_overrides(
        catalogue={"initial_items": 120, "items_per_week": 40},
        reading={"history_weeks": 1},
        email={"unsubscribe_base": 0.5},
    )
    url = sqlite_engine.url.render_as_string(hide_password=False)
    config = SimulationConfig(world=world, subscribers=150, weeks=2, seed=2, workers=1)
    simulate(engine=sqlite_engine, config=config, database_url=url)
    with sqlite_engine.connect() as c:
        gone = c.execute(
            text("SELECT count(*) FROM subscriber WHERE status = 'unsubscribed'")
        ).scalar()
        unsub_events = c.execute(
            text("SELECT count(*) FROM event WHERE kind = 'unsubscribe'")
        ).scalar()
        resent = c.execute(
            text(
                "SELECT count(*) FROM message m JOIN subscriber s ON s.id = m.subscriber_id "
                "WHERE m.run_id = 2 AND m.status = 'sent' AND s.id IN (SELECT e.subscriber_id "
                "FROM event e JOIN message x ON x.id = e.message_id "
                "WHERE e.kind = 'unsubscribe' AND x.run_id = 1)"
            )
        ).scalar()
    assert gone and gone == unsub_events and gone > 10
    assert resent == 0


def test_cli_simulate_prints_the_issue_keys_and_writes_no_html(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = tmp_path / "tiny.toml"
    world.write_text(
        "[catalogue]\ninitial_items = 100\nitems_per_week = 30\n[reading]\nhistory_weeks = 1\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--subscribers",
            "120",
            "--weeks",
            "1",
            "--world",
            str(world),
            "--json",
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["subscribers"] == 120 and data["weeks"] == 1
    assert isinstance(data["lift_ci95"], list) and len(data["lift_ci95"]) == 2
    assert not list(tmp_path.glob("*.html"))


def test_cli_simulate_refuses_a_bad_world_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[email]\nopen_rate = 3\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["simulate", "--world", str(bad)])
    assert result.exit_code == 2
    assert "email.open_rate" in result.output and "Traceback" not in result.output
    missing = CliRunner().invoke(app, ["simulate", "--world", str(tmp_path / "none.toml")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_a_kept_database_can_be_reported_and_is_not_simulated_into_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = tmp_path / "tiny.toml"
    world.write_text("[catalogue]\ninitial_items = 80\n[reading]\nhistory_weeks = 1\n", "utf-8")
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    args = ["simulate", "--subscribers", "100", "--weeks", "1", "--world", str(world)]
    first = CliRunner().invoke(app, [*args, "--database", url, "--workers", "1"])
    assert first.exit_code == 0, first.output
    assert "verdict:" in first.output
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    report = CliRunner().invoke(app, ["report", "weekly-digest", "--json"])
    assert report.exit_code == 0 and json.loads(report.stdout)["weeks"] == 1
    again = CliRunner().invoke(app, [*args, "--database", url])
    assert again.exit_code == 2 and "already holds runs" in again.output


def _all_events(engine: Engine) -> list[tuple[object, ...]]:
    query = (
        "SELECT message_id, kind, slot_position, occurred_at, is_machine, machine_reason, "
        "user_agent, ip FROM event ORDER BY message_id, occurred_at, kind, slot_position, id"
    )
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(text(query))]


def test_buffered_tracking_writes_what_writing_each_event_at_once_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator's tracking app buffers clicks and opens (as ``newsletter serve`` does);
    the events and machine flags are those of the app that writes every event at once."""
    from newsletter.db import make_engine, upgrade
    from newsletter.simulate import loop

    found, real = [], loop.simulation_settings
    for flush_rows in (0, 50):  # 50: a dozen flushes a week, bursts split across them
        monkeypatch.setattr(
            loop,
            "simulation_settings",
            lambda c, u, n=flush_rows: real(c, u).model_copy(update={"track_flush_rows": n}),
        )
        engine = make_engine(f"sqlite:///{tmp_path / f'flush{flush_rows}.db'}")
        upgrade(engine)
        url = engine.url.render_as_string(hide_password=False)
        simulate(engine=engine, config=_config(workers=1), database_url=url)
        found.append(_all_events(engine))
        engine.dispose()
    unbuffered, buffered = found
    assert len(unbuffered) > 500
    assert any(row[4] for row in unbuffered) and not all(row[4] for row in unbuffered)

    # Which rule is named first can differ (a burst split over two flushes is judged on its
    # start, then whole; the per-event app judges every prefix), never whether it is machine.
    def facts(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
        return [r[:5] + r[6:] for r in rows]

    assert facts(buffered) == facts(unbuffered)
    differ = {(b[5], u[5]) for b, u in zip(buffered, unbuffered, strict=True) if b[5] != u[5]}
    assert all(b in RULES and u in RULES for b, u in differ)
