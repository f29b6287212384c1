"""Console accounts: login, roles, CSRF, lockout, secure headers, the users CLI."""
from __future__ import annotations

import pytest
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


# -- M1: after login, `next` never leaves the site ------------------------------------------------

def _login_at(client, url: str, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    """Open the login page at `url` (as a link would) and post the form back to the same URL."""
    token = csrf_from(client.get(url).get_data(as_text=True))
    return client.post(url, data={"email": email, "password": password, "csrf_token": token})


def _stays_on_site(location: str) -> bool:
    """What a browser does with the Location: it drops tabs and newlines and reads \\ as /."""
    from urllib.parse import urljoin, urlsplit

    browser = "".join(ch for ch in location if ch not in "\t\r\n").replace("\\", "/")
    return urlsplit(urljoin("https://gateway.example.org/login", browser)).netloc == "gateway.example.org"


@pytest.mark.parametrize("next_arg", [
    "/%09/evil.example", "/%0d/evil.example", "/%0a/evil.example", "//evil.example", "/\\evil.example",
    "/%5Cevil.example", "https://evil.example/", "%2F%2Fevil.example", "/%09%5Cevil.example",
    "%20//evil.example", "javascript:alert(1)", "/%00/evil.example",
])
def test_next_after_login_never_leaves_the_site(client, auth, next_arg: str) -> None:
    """A phishing link `/login?next=/%09/evil.example`: the real login lands on our dashboard."""
    response = _login_at(client, f"/login?next={next_arg}", auth.user("viewer"))
    assert response.status_code == 302
    location = response.headers["Location"]
    assert _stays_on_site(location) and "evil" not in location, location


def test_next_within_the_site_is_kept(client, auth) -> None:
    response = _login_at(client, "/login?next=/reports%3Fplace%3DZomba", auth.user("viewer"))
    assert response.status_code == 302 and response.headers["Location"] == "/reports?place=Zomba"
