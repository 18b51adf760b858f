"""Sign-in: argon2id hashes, server-side sessions, CSRF on the login form, rate limit, the CLI."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from typer.testing import CliRunner
from ui_world import ADMIN, PASSWORD, VIEWER, Clock, signed_in

from newsletter import cli
from newsletter.admin.accounts import MAX_FAILS_PER_EMAIL, WINDOW
from newsletter.models import AdminSession, AdminUser


def _login(client: TestClient, email: str, password: str):
    form = client.get("/admin/login")
    token = client.cookies.get("nl_login")
    assert token and f'value="{token}"' in form.text
    return client.post(
        "/admin/login", data={"login_token": token, "email": email, "password": password}
    )


def test_sign_in_starts_a_server_side_session_and_sign_out_ends_it(
    client: TestClient, engine: Engine
) -> None:
    answer = _login(client, ADMIN, PASSWORD)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/campaigns"
    cookie = answer.headers["set-cookie"]
    assert "nl_admin=" in cookie and "HttpOnly" in cookie and "Secure" in cookie
    assert "samesite=lax" in cookie.lower() and "Path=/admin" in cookie
    token = client.cookies.get("nl_admin")
    with engine.connect() as c:
        stored = c.execute(select(AdminSession.id)).scalars().all()  # type: ignore[call-overload]
        hashed = c.execute(select(AdminUser.password_hash)).scalars().all()  # type: ignore[call-overload]
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]  # never the cookie itself
    assert all(h.startswith("$argon2id$") for h in hashed) and PASSWORD not in "".join(hashed)
    page = client.get("/admin/campaigns")
    assert page.status_code == 200 and "admin@example.com (admin)" in page.text
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/admin/logout", data={"csrf_token": csrf}).status_code == 303
    with engine.connect() as c:
        assert c.execute(select(AdminSession.id)).all() == []  # type: ignore[call-overload]
    client.cookies.set("nl_admin", token, domain="news.example.com", path="/admin")
    again = client.get("/admin/campaigns")  # the old cookie no longer opens anything
    assert again.status_code == 303 and again.headers["location"].startswith("/admin/login")


def test_wrong_passwords_are_refused_then_rate_limited_until_the_window_passes(
    client: TestClient, clock: Clock
) -> None:
    assert _login(client, ADMIN, "wrong password!").status_code == 401
    unknown = _login(client, "nobody@example.com", PASSWORD)
    assert unknown.status_code == 401 and "Wrong email address or password." in unknown.text
    for _ in range(MAX_FAILS_PER_EMAIL - 1):
        assert _login(client, ADMIN, "still wrong!!").status_code == 401
    limited = _login(client, ADMIN, PASSWORD)  # the right password no longer helps
    assert limited.status_code == 429 and "Too many failed sign-ins" in limited.text
    assert client.cookies.get("nl_admin") is None
    assert _login(client, VIEWER, PASSWORD).status_code == 303  # another address is not locked
    client.cookies.clear()
    clock.advance(seconds=WINDOW.total_seconds() + 1)
    assert _login(client, ADMIN, PASSWORD).status_code == 303


def test_the_login_form_needs_its_own_token(client: TestClient) -> None:
    client.get("/admin/login")
    forged = client.post(
        "/admin/login", data={"login_token": "forged", "email": ADMIN, "password": PASSWORD}
    )
    assert forged.status_code == 403 and client.cookies.get("nl_admin") is None
    token = client.cookies.get("nl_login")
    other_site = client.post(
        "/admin/login",
        data={"login_token": token, "email": ADMIN, "password": PASSWORD},
        headers={"Origin": "https://evil.example.net"},
    )
    assert other_site.status_code == 403


def test_a_session_ends_after_two_idle_hours(client: TestClient, clock: Clock) -> None:
    signed_in(client, VIEWER)
    clock.advance(minutes=90)
    assert client.get("/admin/templates").status_code == 200  # and this slides the expiry
    clock.advance(minutes=90)
    assert client.get("/admin/templates").status_code == 200
    clock.advance(hours=2, seconds=1)
    answer = client.get("/admin/templates")
    assert answer.status_code == 303 and "next=/admin/templates" in answer.headers["location"]


def test_sign_in_redirects_only_inside_the_ui(client: TestClient) -> None:
    client.get("/admin/login?next=//evil.example.net/x")
    token = client.cookies.get("nl_login")
    answer = client.post(
        "/admin/login",
        data={
            "login_token": token,
            "email": ADMIN,
            "password": PASSWORD,
            "next": "//evil.example.net/x",
        },
    )
    assert answer.headers["location"] == "/admin/campaigns"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'users.db'}")
    return tmp_path


def test_user_add_hashes_the_password_and_refuses_bad_input(workdir: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(
        cli.app,
        ["user", "add", "ada@example.com", "--role", "editor", "--password-stdin"],
        input="a long enough password\n",
    )
    assert added.exit_code == 0, added.output
    assert "ada@example.com added: editor" in added.output
    prompted = runner.invoke(
        cli.app,
        ["user", "add", "ada@example.com", "--role", "admin"],
        input="another long password\nanother long password\n",
    )
    assert prompted.exit_code == 0 and "updated" in prompted.output
    listed = runner.invoke(cli.app, ["user", "list"])
    assert "ada@example.com" in listed.output and "admin" in listed.output
    for args, stdin, expected in [
        (["user", "add", "ada@example.com", "--password-stdin"], "short\n", "at least 10"),
        (["user", "add", "not-an-email", "--password-stdin"], "long enough pw\n", "not an email"),
        (
            ["user", "add", "b@example.com", "--role", "owner", "--password-stdin"],
            "long enough pw\n",
            "use one of viewer, editor, admin",
        ),
    ]:
        refused = runner.invoke(cli.app, args, input=stdin)
        assert refused.exit_code == 2 and expected in refused.output, refused.output
        assert "Traceback" not in refused.output
    from newsletter.db import make_engine
    from newsletter.store.users import find_user

    user = find_user(make_engine(f"sqlite:///{workdir / 'users.db'}"), email="ADA@example.com")
    assert user is not None and user.role == "admin"
    assert user.password_hash.startswith("$argon2id$")
