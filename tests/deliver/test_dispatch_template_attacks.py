"""A run survives hostile templates: bombs fail only their own message, in bounded time; a
template reaching for the secret key gets nothing of it; a template that fails lint stops the
run before anything renders (with the line), and the CLI says so without a traceback."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from dispatch_data import DISPATCH_NOW, plan_dispatch_run, seed_dispatch_world
from sqlalchemy import Engine, select, update
from sqlmodel import Session
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.deliver import MemoryTransport
from newsletter.deliver.dispatch import DeliveryError, DispatchPolicy, dispatch_run
from newsletter.models import Message, Subscriber, Template, TemplateVersion
from newsletter.render.compile import load_template_source
from newsletter.render.lint import lint_template
from testsupport import STRONG_SECRET

pytestmark = pytest.mark.timeout(300)
SETTINGS = Settings(secret_key=STRONG_SECRET, base_url="https://news.example.com")
BOMBS = {
    "nested-loops": "{% for i in range(100000) %}{% for j in range(100000) %}x"
    "{% endfor %}{% endfor %}",
    "silent-loops": "{% for i in range(100000) %}{% for j in range(100000) %}"
    "{% endfor %}{% endfor %}",
    "power": "{{ 10 ** (10 ** 8) }}",
    "repeat": "{{ 'x' * 10 ** 9 }}",
    "center": "{{ 'x'.center(10 ** 9) }}",
    "replace": "{{ ('a' * 1000)|replace('a', 'b' * 1000)|replace('b', 'c' * 1000) }}",
    "format": "{{ '%0999999999d' % 1 }}",
    "batch": "{{ [1]|batch(10 ** 9)|list }}",
    "output": "{% for i in range(100000) %}{{ 'y' * 100 }}{% endfor %}",
    "recursion": "{% for x in [[1]] recursive %}{{ loop([x]) }}{% endfor %}",
}
SECRET_PATHS = [
    "{{ _nl_links }}",
    "{{ _nl_links.links.secret_key }}",
    "{{ _nl_links.links }}",
    "{{ _nl_links.__call__.__self__.links.secret_key }}",
    "{{ _nl_pixel }}",
    "{{ self }}",
    "{{ self._TemplateReference__context }}",
    "{{ tracked }}",
    "{{ range.__self__ }}",
    "{{ namespace }}",
    "{{ dict(a=1) }}",
    "{{ subscriber }}{{ campaign }}{{ run }}{{ message }}{{ sections }}{{ hero }}",
    "{{ unsubscribe_url }}{{ preferences_url }}{{ view_url }}",
]


def _save_digest(engine: Engine, *, text_extra: str = "", mjml_extra: str = "") -> None:
    """Save a database version of 'digest' (the campaign's template) with extra markup."""
    shipped = load_template_source("digest")
    mjml = shipped.mjml.replace(
        '<mj-include path="partials/footer.mjml" />',
        '<mj-include path="partials/footer.mjml" />'
        f"<mj-section><mj-column><mj-text>{mjml_extra}</mj-text></mj-column></mj-section>",
    )
    text = shipped.text + text_extra
    with Session(engine) as s:
        row = Template(name="digest", current_version=1, updated_at=DISPATCH_NOW)
        s.add(row)
        s.flush()
        s.add(
            TemplateVersion(
                template_id=row.id,
                version=1,
                mjml=mjml,
                subject=shipped.subject,
                preheader=shipped.preheader,
                text=text,
                source_hash=hashlib.sha256((mjml + text).encode()).hexdigest(),
                created_at=DISPATCH_NOW,
            )
        )
        s.commit()


def _arm_bombs(engine: Engine, run_id: int, bombs: dict[str, str] = BOMBS) -> dict[int, str]:
    """Give one planned subscriber per bomb the attribute that sets it off: message -> bomb."""
    with Session(engine) as s:
        planned = s.exec(
            select(Message.id, Message.subscriber_id)
            .where(Message.run_id == run_id, Message.status == "planned")  # type: ignore[arg-type]
            .order_by(Message.id)  # type: ignore[arg-type]
        ).all()
    assert len(planned) > len(bombs)
    armed = {}
    with Session(engine) as s:
        for (message_id, subscriber_id), bomb in zip(planned, bombs, strict=False):
            s.execute(
                update(Subscriber)
                .where(Subscriber.id == subscriber_id)  # type: ignore[arg-type]
                .values(attributes={"bomb": bomb})
            )
            armed[int(message_id)] = bomb
        s.commit()
    return armed


def _messages(engine: Engine, run_id: int) -> dict[int, tuple[str, str | None, str | None]]:
    with Session(engine) as s:
        rows = s.exec(
            select(Message.id, Message.status, Message.reason, Message.error).where(
                Message.run_id == run_id  # type: ignore[arg-type]
            )
        ).all()
    return {int(r[0]): (r[1], r[2], r[3]) for r in rows}


def test_each_template_bomb_fails_only_its_message_and_the_run_goes_on(engine: Engine) -> None:
    seed_dispatch_world(engine, subscribers=30)
    cases = "".join(
        f"{{% if subscriber.attributes.bomb == '{name}' %}}{bomb}{{% endif %}}"
        for name, bomb in BOMBS.items()
    )
    _save_digest(engine, text_extra="\n" + cases + "\n")
    run_id = plan_dispatch_run(engine)
    armed = _arm_bombs(engine, run_id)
    transport = MemoryTransport()
    dispatch_run(
        engine,
        run_id=run_id,
        transport=transport,
        settings=SETTINGS,
        now=DISPATCH_NOW,
        policy=DispatchPolicy(),
    )
    rows = _messages(engine, run_id)
    for message_id, bomb in armed.items():
        status, reason, error = rows[message_id]
        assert (status, reason) == ("failed", "render_error"), bomb
        assert error and "Traceback" not in error, bomb
    others = {mid for mid, row in rows.items() if mid not in armed and row[0] != "skipped"}
    assert others and {rows[mid][0] for mid in others} == {"sent"}
    assert {int(m.key) for m in transport.sent} == others
    assert max(len(m.data) for m in transport.sent) < 1_000_000


def test_no_path_from_a_template_reaches_the_secret_key(engine: Engine) -> None:
    """Rendered with the linter bypassed (each message as a run renders it), every path found
    in the render context and the token code, one per subscriber, yields no trace of the key:
    it renders something harmless or fails that message (undefined, security error)."""
    seed_dispatch_world(engine, subscribers=30)
    names = {f"p{n}": path for n, path in enumerate(SECRET_PATHS)}
    cases = "".join(
        f"{{% if subscriber.attributes.bomb == '{name}' %}}{path}{{% endif %}}"
        for name, path in names.items()
    )
    _save_digest(engine, text_extra="\n" + cases + "\n", mjml_extra=cases)
    run_id = plan_dispatch_run(engine)
    armed = _arm_bombs(engine, run_id, names)
    transport = MemoryTransport()
    import newsletter.deliver.dispatch as dispatch

    original = dispatch.lint_template
    dispatch.lint_template = lambda source: []  # type: ignore[assignment]
    try:
        dispatch_run(
            engine,
            run_id=run_id,
            transport=transport,
            settings=SETTINGS,
            now=DISPATCH_NOW,
            policy=DispatchPolicy(),
        )
    finally:
        dispatch.lint_template = original
    rows = _messages(engine, run_id)
    forms = {STRONG_SECRET, STRONG_SECRET.encode().hex(), STRONG_SECRET[:12]}
    for message in transport.sent:
        body = message.data.decode("utf-8", "replace")
        assert not any(form in body for form in forms)
        assert not re.search("LinkRewriter|MessageLinks|secret", body)
    for message_id in armed:
        status, _, error = rows[message_id]
        assert status in ("sent", "failed"), (armed[message_id], error)
        assert STRONG_SECRET not in (error or "")
    assert any(rows[m][0] == "sent" for m in armed) and any(rows[m][0] == "failed" for m in armed)


# The paths that reach for the link-signing code or the template's own internals (the rest
# of SECRET_PATHS are documented variables that render harmlessly).
REACHING = [p for p in SECRET_PATHS if re.search(r"_nl_|self|tracked|__", p)]


@pytest.mark.parametrize("path", REACHING)
def test_lint_fails_every_path_that_reaches_for_the_secret(path: str) -> None:
    shipped = load_template_source("digest")
    for part, source in (
        ("text.txt", replace(shipped, text=shipped.text + "\n" + path + "\n")),
        (
            "template.mjml",
            replace(
                shipped,
                mjml=shipped.mjml.replace("</mj-body>", f"<mj-raw>{path}</mj-raw></mj-body>"),
            ),
        ),
    ):
        errors = [i for i in lint_template(source) if i.severity == "error"]
        assert any(i.path == f"digest/{part}" and i.line > 1 for i in errors), (path, part, errors)


def test_a_template_failing_lint_stops_the_run_before_anything_renders(engine: Engine) -> None:
    seed_dispatch_world(engine, subscribers=6)
    _save_digest(engine, text_extra="\n{{ _nl_links.links.secret_key }}\n")
    run_id = plan_dispatch_run(engine)
    before = _messages(engine, run_id)
    with pytest.raises(DeliveryError, match=r"fails lint.*\n  digest@v1/text\.txt:\d+:1: error"):
        dispatch_run(
            engine,
            run_id=run_id,
            transport=MemoryTransport(),
            settings=SETTINGS,
            now=DISPATCH_NOW,
            policy=DispatchPolicy(),
        )
    assert _messages(engine, run_id) == before  # nothing rendered, nothing failed


@pytest.mark.parametrize(
    ("bomb", "needle"),
    [
        ("{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}", "brackets nest deeper than 32"),
        ("{% if 1 %}" * 400 + "x" + "{% endif %}" * 400, "blocks nest deeper than 16"),
        ("{{ 'x' }}" * 20_000, "the limit is 100000"),
    ],
)
def test_the_cli_run_refuses_an_over_nested_template_with_its_line(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bomb: str, needle: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", STRONG_SECRET)
    seed_dispatch_world(sqlite_engine, subscribers=5)
    _save_digest(sqlite_engine, text_extra="\n" + bomb + "\n")
    when = (DISPATCH_NOW + timedelta(hours=4)).isoformat()
    result = CliRunner().invoke(app, ["run", "weekly", "--now", when, "--transport", "memory:"])
    output = result.stdout + (result.stderr or "")
    assert result.exit_code == 1, output
    assert needle in output and "Traceback" not in output
    assert re.search(r"digest@v1/text\.txt:\d+:\d+: error", output)
