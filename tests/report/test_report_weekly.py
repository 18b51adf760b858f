"""`newsletter report` over weeks on a simulated campaign: per run and pooled, JSON, HTML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.report.weekly import build_weekly_report


def _cli(url: str, *args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
    return CliRunner().invoke(app, ["report", *args])


def test_pooled_counts_are_the_sum_of_the_runs(simulated: tuple[Engine, str]) -> None:
    engine, _ = simulated
    report = build_weekly_report(engine, campaign="weekly-digest", ope=True)
    assert len(report.runs) == 3
    for arm, pooled in report.pooled.items():
        for name in ("delivered", "human_opens", "human_clicks", "machine_opens", "unsubscribes"):
            assert getattr(pooled, name) == sum(getattr(r.arms[arm], name) for r in report.runs)
    with engine.connect() as c:
        sent = c.execute(text("SELECT count(*) FROM message WHERE status = 'sent'")).scalar()
    assert sum(s.delivered for s in report.pooled.values()) == sent
    p = report.pooled["personalized"]
    assert p.any_clicks >= p.human_clicks and p.machine_opens > 0
    assert report.lift is not None and report.lift.low is not None
    assert report.lift.low <= (report.lift.lift or 0) <= (report.lift.high or 0)
    assert report.lift_unfiltered is not None and report.lift_unfiltered.lift != report.lift.lift
    assert len(report.cumulative) == 3 and report.cumulative[-1]["lift"] == pytest.approx(
        report.lift.lift, rel=1e-9
    )
    g = report.guardrails
    assert 0 < (g.coverage["personalized"] or 0) <= 1 and g.explore_slots > 0
    assert g.explore_ctr is not None and g.exploit_ctr is not None
    assert report.ope is not None and report.ope.rounds == g.explore_slots


def test_json_has_runs_pooled_verdict_and_definitions_and_writes_no_html(
    simulated: tuple[Engine, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = simulated
    result = _cli(url, "weekly-digest", "--json", "--ope", cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    data = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert data["weeks"] == 3 and len(data["runs"]) == 3
    assert {"lift", "lift_unfiltered", "lift_control", "arms"} <= set(data["pooled"])
    assert data["verdict"]["status"] in {"win", "loss", "inconclusive", "unmeasured"}
    assert "human clicks" in data["definitions"] and data["ope"]["policy"] == "popular"
    assert data["html"] is None and not list(tmp_path.glob("*.html"))
    every = _cli(url, "--all", "--json", cwd=tmp_path, monkeypatch=monkeypatch)
    assert json.loads(every.stdout)["campaigns"] == ["weekly-digest"]  # type: ignore[attr-defined]
    later = _cli(url, "--since", "2026-03-09", "--json", cwd=tmp_path, monkeypatch=monkeypatch)
    assert json.loads(later.stdout)["weeks"] == 2  # type: ignore[attr-defined]


def test_terminal_summary_writes_the_html_and_a_run_id_still_works(
    simulated: tuple[Engine, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = simulated
    result = _cli(url, cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "verdict:" in result.output and (tmp_path / "report.html").exists()  # type: ignore[attr-defined]
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 3 and "How each number is counted" in page
    for external in ('src="http', 'href="http', "<link", "<script"):
        assert external not in page  # one self-contained file
    one = _cli(url, "2", "--json", cwd=tmp_path, monkeypatch=monkeypatch)
    data = json.loads(one.stdout)  # type: ignore[attr-defined]
    assert data["run_id"] == 2 and {a["arm"] for a in data["arms"]} == {"personalized", "popular"}


def test_unknown_campaign_and_bad_date_are_one_line_errors(
    simulated: tuple[Engine, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = simulated
    nope = _cli(url, "no-such-campaign", cwd=tmp_path, monkeypatch=monkeypatch)
    assert nope.exit_code == 2 and "no runs of campaign 'no-such-campaign'" in nope.output  # type: ignore[attr-defined]
    bad = _cli(url, "--since", "yesterday", cwd=tmp_path, monkeypatch=monkeypatch)
    assert bad.exit_code == 2 and "--since 'yesterday'" in bad.output  # type: ignore[attr-defined]
    both = _cli(url, "weekly-digest", "--all", cwd=tmp_path, monkeypatch=monkeypatch)
    assert both.exit_code == 2  # type: ignore[attr-defined]


def test_a_control_arm_is_compared_on_site_activity(sqlite_engine: Engine) -> None:
    from dataclasses import replace

    from report_world import small_world

    from newsletter.simulate.loop import simulate

    config = small_world(weeks=2)
    world = config.world.with_overrides(experiment={"popular_share": 0.2, "control_share": 0.2})
    url = sqlite_engine.url.render_as_string(hide_password=False)
    simulate(engine=sqlite_engine, config=replace(config, world=world), database_url=url)
    report = build_weekly_report(sqlite_engine, campaign="weekly-digest")
    control = report.pooled["control"]
    assert control.delivered == 0 and 60 < control.members < 200
    assert 0 < control.site_active <= control.members
    assert report.lift_control is not None and report.lift_control.versus == "control"
    first = report.runs[0].arms["control"]  # the last run's following week is not known yet
    assert report.lift_control.b == first.site_active / first.members
    assert any(line.startswith("  control:") for line in report.lines())
