"""Console accounts: login, roles, CSRF, lockout, secure headers, the users CLI."""
from __future__ import annotations

from sqlalchemy import select

from gateway.models import AuditEvent
from tests.conftest import PASSWORD, csrf_from


def test_pages_need_a_login(client) -> None:
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_login_logout_and_audit(app, client, auth) -> None:
    assert auth.login("viewer").status_code == 302
    page = client.get("/")
    assert page.status_code == 200 and b"active supporters" in page.data
    token = csrf_from(page.get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302
    with app.extensions["gateway"].sessions() as s:
        assert s.scalars(select(AuditEvent.action)).all() == ["login"]


def test_wrong_password_and_lockout(app, client, auth) -> None:
    email = auth.user("organizer")
    for _ in range(5):
        token = csrf_from(client.get("/login").get_data(as_text=True))
        r = client.post("/login", data={"email": email, "password": "wrong password", "csrf_token": token})
        assert r.status_code == 401
    token = csrf_from(client.get("/login").get_data(as_text=True))
    locked = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert locked.status_code == 401  # right password, but locked for 15 minutes


def test_login_without_csrf_token_is_refused(client, auth) -> None:
    email = auth.user("admin")
    assert client.post("/login", data={"email": email, "password": PASSWORD}).status_code == 400


def test_viewer_cannot_open_admin_pages(client, auth) -> None:
    auth.login("viewer")
    assert client.get("/users").status_code == 403


def test_secure_headers(client) -> None:
    r = client.get("/login")
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert "HttpOnly" in (client.get("/login").headers.get("Set-Cookie") or "HttpOnly")


def test_users_create_cli(runner) -> None:
    r = runner.invoke(args=["users", "create", "--email", "Ana@Example.org", "--role", "admin",
                            "--password", "a long enough secret"])
    assert r.exit_code == 0 and "ana@example.org can log in as admin" in r.output
    again = runner.invoke(args=["users", "create", "--email", "ana@example.org", "--role", "viewer",
                                "--password", "a long enough secret"])
    assert again.exit_code != 0 and "already has an account" in again.output
    short = runner.invoke(args=["users", "create", "--email", "b@example.org", "--role", "viewer",
                                "--password", "short"])
    assert short.exit_code != 0 and "at least 10" in short.output
