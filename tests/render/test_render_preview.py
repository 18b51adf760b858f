"""Render context from the database, and `newsletter preview` on real and fixture data."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.models import Campaign, Item, Message, Run, Slot, Subscriber
from newsletter.render.compile import load_template_source
from newsletter.render.context import build_context
from newsletter.render.fixtures import FIXTURE_NOW as NOW
from newsletter.render.preview import PreviewError, preview
from newsletter.render.render import RenderedMessage
from newsletter.render.stored import (
    RenderFailure,
    render_stored,
    render_stored_html,
    stored_inputs,
)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _seed(engine) -> tuple[int, int]:
    """A subscriber with a planned 3-slot message in two sections: (message id, subscriber id)."""
    with Session(engine, expire_on_commit=False) as session:
        person = Subscriber(
            email="grace@example.org",
            name="Grace Hopper",
            timezone="America/New_York",
            attributes={"plan": "team"},
            created_at=T0,
            updated_at=T0,
        )
        items = [
            Item(
                external_key=f"k{i}",
                title=f"Compilers, part {i}",
                url=f"https://ex.org/c/{i}",
                summary=f"Summary {i}",
                image_url=None if i == 2 else f"https://img.ex.org/{i}.png",
                topics=["compilers"],
                updated_at=T0,
            )
            for i in range(3)
        ]
        campaign = Campaign(
            name="Friday Picks",
            kind="digest",
            template_name="digest",
            config={"section_titles": {"more": "More picks"}},
            created_at=T0,
        )
        session.add_all([person, *items, campaign])
        session.flush()
        run = Run(campaign_id=campaign.id, scheduled_for=T0, created_at=T0)
        session.add(run)
        session.flush()
        message = Message(
            run_id=run.id,
            subscriber_id=person.id,
            arm="personalized",
            planned_for=T0,
            updated_at=T0,
        )
        session.add(message)
        session.flush()
        for position, (item, section) in enumerate(
            zip(items, ["top", "more", "more"], strict=True)
        ):
            session.add(
                Slot(
                    message_id=message.id,
                    position=position,
                    section=section,
                    item_id=item.id,
                    source="hybrid",
                    score=1.0,
                    propensity=0.9,
                    reason_kind="similar",
                    reason_anchor="compilers",
                    reason_text=f"Because you read about compilers ({position}).",
                )
            )
        session.commit()
        return int(message.id), int(person.id)


def test_context_from_db_has_hero_sections_and_reasons(engine, settings) -> None:
    message_id, _ = _seed(engine)
    data = stored_inputs(engine, message_ids=[message_id])[message_id]
    context = build_context(data, settings=settings)
    assert context["subscriber"]["first_name"] == "Grace"
    assert context["campaign"]["name"] == "Friday Picks"
    assert context["hero"]["item"]["title"] == "Compilers, part 0"
    assert [s["title"] for s in context["sections"]] == ["More picks"]
    slots = context["sections"][0]["slots"]
    assert [s["position"] for s in slots] == [1, 2]
    assert slots[1]["item"]["image_url"] is None
    assert slots[0]["reason"]["text"] == "Because you read about compilers (1)."
    assert context["run"]["date_label"] == "20 November 2026"
    with pytest.raises(TypeError):
        context["subscriber"]["email"] = "x"  # type: ignore[index]


def test_preview_uses_the_subscribers_planned_message(engine, settings) -> None:
    message_id, subscriber_id = _seed(engine)
    result = preview("digest", settings=settings, engine=engine, subscriber=subscriber_id, now=NOW)
    assert result.data_source == "database"
    assert result.rendered.recipient == "grace@example.org"
    assert result.rendered.subject == "Compilers, part 0 and 2 more picks for you"
    for position in range(3):
        assert f"Because you read about compilers ({position})." in result.rendered.text
    assert f"<nl.{message_id}." in result.rendered.message_id_header


def test_preview_falls_back_to_fixture_data_on_an_empty_database(sqlite_engine, settings) -> None:
    result = preview("digest", settings=settings, engine=sqlite_engine, now=NOW)
    assert result.data_source == "fixture"
    assert result.rendered.subject == "Async Python in practice and 7 more picks for you"
    with pytest.raises(PreviewError, match="subscriber 99"):
        preview("digest", settings=settings, engine=sqlite_engine, subscriber=99, now=NOW)


def test_preview_of_a_subscriber_without_a_message_says_what_is_sample_data(
    sqlite_engine, settings
) -> None:
    with Session(sqlite_engine) as session:
        session.add(
            Subscriber(email="ann@example.org", name="Ann Lee", created_at=NOW, updated_at=NOW)
        )
        for i in range(3):
            session.add(
                Item(
                    external_key=f"k{i}",
                    title=f"Real {i}",
                    url=f"https://a.example/{i}",
                    updated_at=NOW,
                )
            )
        session.commit()
    result = preview("digest", settings=settings, engine=sqlite_engine, subscriber=1, now=NOW)
    assert result.data_source == "database rows + fixture"
    assert result.note == (
        "subscriber 1 and 3 items from the database; the sections, reasons, campaign name and "
        "date are sample data (no message planned for them yet)"
    )
    assert "Hi Ann," in result.rendered.text and "Real 0" in result.rendered.text


def test_db_rendered_message_matches_the_stored_rows(sqlite_engine, settings, digest) -> None:
    message_id, _ = _seed(sqlite_engine)
    rendered = render_stored(
        sqlite_engine, message_ids=[message_id], compiled=digest, settings=settings, now=NOW
    )[message_id]
    assert isinstance(rendered, RenderedMessage)
    parsed = email.message_from_bytes(rendered.bytes, policy=policy.default)
    assert parsed["To"] == "Grace Hopper <grace@example.org>"
    assert parsed["List-Id"] == '"Friday Picks" <friday-picks.news.example.com>'


def test_the_html_only_render_is_the_html_part_delivery_sends(sqlite_engine, settings, digest):
    message_id, _ = _seed(sqlite_engine)
    sent = render_stored(
        sqlite_engine, message_ids=[message_id], compiled=digest, settings=settings, now=NOW
    )[message_id]
    assert isinstance(sent, RenderedMessage)
    parsed = email.message_from_bytes(sent.bytes, policy=policy.default)
    part = parsed.get_body(preferencelist=("html",))
    assert part is not None
    html = render_stored_html(
        sqlite_engine, message_id=message_id, compiled=digest, settings=settings
    )
    assert html == sent.html == part.get_content().replace("\r\n", "\n")
    assert "Compilers, part 2" in html and "/t/o/" in html  # the pixel is in the page too
    gone = render_stored_html(
        sqlite_engine, message_id=message_id + 1, compiled=digest, settings=settings
    )
    assert isinstance(gone, RenderFailure) and not gone.template


def test_a_template_folder_is_read_again_when_a_file_changes(tmp_path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    for part, text in [
        ("template.mjml", "<mjml><mj-body></mj-body></mjml>"),
        ("subject.txt", "Hello"),
        ("preheader.txt", ""),
        ("text.txt", "Hi"),
    ]:
        (folder / part).write_text(text, encoding="utf-8")
    first = load_template_source(folder)
    assert load_template_source(folder) is first  # unchanged files are not read again
    (folder / "subject.txt").write_text("Hello again", encoding="utf-8")
    assert load_template_source(folder).subject == "Hello again"
    assert "partials/hero.mjml" in first.partials  # the shipped partials come along


def test_cli_preview_writes_html_and_eml(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "cli-preview-secret-123")
    result = CliRunner().invoke(
        app, ["preview", "trigger", "--out", "t.html", "--eml", "t.eml"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "New in python: Async Python in practice" in result.output
    assert "data: sample data throughout (the database has no subscribers or items yet)" in (
        result.output
    )
    assert (tmp_path / "t.html").read_text().lower().startswith("<!doctype html>")
    parsed = email.message_from_bytes((tmp_path / "t.eml").read_bytes(), policy=policy.default)
    assert parsed["Subject"] == "New in python: Async Python in practice"
    assert not (tmp_path / "none.db").exists()  # previewing never creates a database


def test_cli_preview_reports_template_errors_without_traceback(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    source = load_template_source("digest")
    (folder / "template.mjml").write_text(
        source.mjml.replace("{{ subscriber.first_name", "{{ subscriber.frist_name")
    )
    for part in ("subject.txt", "preheader.txt", "text.txt"):
        (folder / part).write_text("Hello")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    result = CliRunner().invoke(app, ["preview", str(folder)])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "broken/template.mjml:7:1: error: unknown variable 'subscriber.frist_name'" in output
    assert "did you mean 'first_name'?" in output
