"""`newsletter send-test TEMPLATE --to ADDRESS [--subscriber KEY]` through a real SMTP server."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from dispatch_data import DISPATCH_NOW, seed_dispatch_world
from smtp_server import SmtpTestServer
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from newsletter import tokens
from newsletter.cli import app
from newsletter.config import Settings
from newsletter.models import Event, Message, Run, Subscriber
from newsletter.track import record

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cli_env(sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "absent.toml"))
    seed_dispatch_world(sqlite_engine, subscribers=8)
    return sqlite_engine


def _rows(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as c:
        return tuple(  # type: ignore[return-value]
            c.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (Run, Message, Event)
        )


def test_send_test_renders_as_the_subscriber_and_records_nothing(
    cli_env: Engine, smtp_server: SmtpTestServer
) -> None:
    with cli_env.connect() as c:
        who = c.execute(select(Subscriber.email, Subscriber.name).where(Subscriber.id == 3)).one()  # type: ignore[call-overload]
    before = _rows(cli_env)
    result = CliRunner().invoke(
        app,
        [
            "send-test",
            "digest",
            "--to",
            "editor@example.org",
            "--subscriber",
            who.email,
            "--transport",
            smtp_server.url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "sent a test email to editor@example.org: [TEST] " in result.output
    assert "subscriber 3 and" in result.output and "sample data" in result.output
    assert smtp_server.wait_for(1) == 1
    (received,) = smtp_server.received()
    assert received.recipients == ("editor@example.org",)
    parsed = message_from_bytes(received.data, policy=default)
    assert parsed["Subject"].startswith("[TEST] ")
    assert parsed["To"] == "editor@example.org"
    assert parsed["X-Newsletter-Test"].startswith("yes")
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert who.name.split()[0] in text  # rendered as that subscriber ("Hi <first name>")
    assert _rows(cli_env) == before  # no run, message or event row was written
    click = next(w for w in text.split() if "/t/c/" in w).rpartition("/")[2]
    payload = tokens.verify_click(click, secret_key=Settings().secret_key)
    recorded = record.record_click(
        cli_env,
        message_id=payload.message_id,
        slot=payload.slot,
        url=payload.url,
        user_agent="Mozilla/5.0 (Macintosh) AppleWebKit Safari",
        ip="192.0.2.1",
        now=DISPATCH_NOW,
    )
    assert recorded is False and _rows(cli_env) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--to", "not-an-address"], "--to 'not-an-address' is not an email address"),
        (["--to", "a@example.org", "--subscriber", "nobody"], "no subscriber with id, email"),
        (["--to", "a@example.org", "--transport", "pigeon://x"], "unknown transport"),
    ],
)
def test_send_test_user_errors_are_one_line(
    cli_env: Engine, args: list[str], expected: str
) -> None:
    result = CliRunner().invoke(app, ["send-test", "digest", *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0


def test_send_test_to_an_unreachable_server_says_so(cli_env: Engine) -> None:
    result = CliRunner().invoke(
        app, ["send-test", "digest", "--to", "a@example.org", "--transport", "smtp://127.0.0.1:9"]
    )
    assert result.exit_code == 1
    assert "did not accept the test email to a@example.org" in result.output
