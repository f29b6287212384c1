"""Console accounts and audit log: admins only; role changes audited; the log cannot be edited."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from gateway.people import accounts
from gateway.people import audit
from gateway.models import AuditEvent, User
from tests.conftest import Auth, csrf_from


def user(app, email: str) -> User:  # type: ignore[no-untyped-def]
    with app.extensions["gateway"].sessions() as s:
        return s.scalars(select(User).where(User.email == email)).one()


def events(app, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with app.extensions["gateway"].sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_admin_creates_a_user_who_can_log_in(app, client, auth) -> None:
    auth.login("admin")
    page = client.get("/users").get_data(as_text=True)
    assert "admin@example.org" in page
    response = client.post("/users", data={"csrf_token": csrf_from(page), "email": "Ana@Example.org",
                                           "role": "organizer", "password": "a long enough secret"})
    assert response.status_code == 302
    ana = user(app, "ana@example.org")
    assert (ana.role, ana.active) == ("organizer", True)
    [event] = events(app, "user.create")
    assert event.actor == "admin@example.org" and event.detail == {"email": "ana@example.org", "role": "organizer"}
    assert "ana@example.org" in client.get("/users").get_data(as_text=True)

    other = app.test_client()
    token = csrf_from(other.get("/login").get_data(as_text=True))
    assert other.post("/login", data={"email": "ana@example.org", "password": "a long enough secret",
                                      "csrf_token": token}).status_code == 302


def test_create_user_errors_are_shown(app, client, auth) -> None:
    auth.login("admin")
    token = auth.csrf("/users")
    short = client.post("/users", data={"csrf_token": token, "email": "b@example.org", "role": "viewer",
                                        "password": "short"})
    assert short.status_code == 400 and "at least 10 characters" in short.get_data(as_text=True)
    again = client.post("/users", data={"csrf_token": token, "email": "admin@example.org", "role": "viewer",
                                        "password": "a long enough secret"})
    assert again.status_code == 400 and "already has an account" in again.get_data(as_text=True)
    bad_role = client.post("/users", data={"csrf_token": token, "email": "c@example.org", "role": "root",
                                           "password": "a long enough secret"})
    assert bad_role.status_code == 400
    with app.extensions["gateway"].sessions() as s:
        assert sorted(s.scalars(select(User.email))) == ["admin@example.org"]


def test_role_change_is_audited_with_old_and_new(app, client, auth) -> None:
    auth.user("viewer")
    viewer = user(app, "viewer@example.org")
    auth.login("admin")
    token = auth.csrf("/users")
    assert client.post(f"/users/{viewer.id}/role", data={"csrf_token": token, "role": "organizer"}).status_code == 302
    assert user(app, "viewer@example.org").role == "organizer"
    [event] = events(app, "user.role")
    assert event.actor == "admin@example.org"
    assert event.detail == {"email": "viewer@example.org", "old": "viewer", "new": "organizer"}
    page = client.get("/audit").get_data(as_text=True)
    assert "user.role" in page and "viewer@example.org" in page


def test_admin_cannot_demote_or_deactivate_themselves(app, client, auth) -> None:
    auth.login("admin")
    me = user(app, "admin@example.org")
    token = auth.csrf("/users")
    client.post(f"/users/{me.id}/role", data={"csrf_token": token, "role": "viewer"})
    client.post(f"/users/{me.id}/active", data={"csrf_token": token, "active": "0"})
    me = user(app, "admin@example.org")
    assert (me.role, me.active) == ("admin", True)
    assert events(app, "user.role") == [] and events(app, "user.deactivate") == []


def test_deactivate_logs_the_user_out(app, client, auth) -> None:
    other = app.test_client()
    Auth(app, other).login("organizer")
    assert other.get("/supporters").status_code == 200
    organizer = user(app, "organizer@example.org")
    auth.login("admin")
    client.post(f"/users/{organizer.id}/active", data={"csrf_token": auth.csrf("/users"), "active": "0"})
    assert user(app, "organizer@example.org").active is False
    assert other.get("/supporters").status_code == 302  # back to the login page
    assert [e.detail for e in events(app, "user.deactivate")] == [{"email": "organizer@example.org"}]


def test_api_token_is_shown_once_and_audited(app, client, auth) -> None:
    auth.user("organizer")
    organizer = user(app, "organizer@example.org")
    auth.login("admin")
    response = client.post(f"/users/{organizer.id}/token", data={"csrf_token": auth.csrf("/users")})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    token = re.search(r'value="(gw_[^"]+)"', response.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    with app.extensions["gateway"].sessions() as s:
        assert accounts.user_for_token(s, token).email == "organizer@example.org"  # type: ignore[union-attr]
    assert token not in client.get("/users").get_data(as_text=True)
    assert token not in client.get("/audit").get_data(as_text=True)
    [event] = events(app, "user.token")
    assert event.detail == {"email": "organizer@example.org", "replaced": False}


@pytest.mark.parametrize("role", ["viewer", "organizer"])
def test_only_admins_get_in(app, client, auth, role: str) -> None:
    auth.user("viewer")
    target = user(app, "viewer@example.org")
    auth.login(role)
    assert client.get("/users").status_code == 403
    assert client.get("/audit").status_code == 403
    token = auth.csrf("/supporters")
    assert client.post("/users", data={"csrf_token": token, "email": "x@example.org", "role": "admin",
                                       "password": "a long enough secret"}).status_code == 403
    assert client.post(f"/users/{target.id}/role", data={"csrf_token": token, "role": "admin"}).status_code == 403
    assert client.post(f"/users/{target.id}/token", data={"csrf_token": token}).status_code == 403
    assert user(app, "viewer@example.org").role == "viewer"


def test_role_change_without_csrf_token_is_refused(app, client, auth) -> None:
    auth.user("viewer")
    target = user(app, "viewer@example.org")
    auth.login("admin")
    assert client.post(f"/users/{target.id}/role", data={"role": "admin"}).status_code == 400
    assert user(app, "viewer@example.org").role == "viewer"


def test_audit_log_newest_first_filtered_by_action(app, client, auth) -> None:
    with app.extensions["gateway"].sessions() as s, s.begin():
        audit.record(s, "cli", "export.reports", filter={"place": "Zomba"})
    with app.extensions["gateway"].sessions() as s, s.begin():
        audit.record(s, "cli", "user.create", email="late@example.org", role="viewer")
    auth.login("admin")
    page = client.get("/audit").get_data(as_text=True)
    table = page[page.index('<table class="audit">'):]
    order = [table.index(text) for text in ('action=login">login<', "late@example.org", "place=Zomba")]
    assert order == sorted(order)  # the login came last, so it is listed first
    only = client.get("/audit?action=export.reports").get_data(as_text=True)
    table = only[only.index('<table class="audit">'):]
    assert "place=Zomba" in table and "late@example.org" not in table and ">login<" not in table


def test_no_route_edits_the_audit_log(app, client, auth) -> None:
    auth.login("admin")
    token = auth.csrf("/audit")
    before = len(events(app, "login"))
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)("/audit", data={"csrf_token": token})
        assert response.status_code == 405, method
        assert getattr(client, method)("/audit/1", data={"csrf_token": token}).status_code in (404, 405)
    assert len(events(app, "login")) == before
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.") and "audit" in r.rule]
    assert rules and all(r.methods <= {"GET", "HEAD", "OPTIONS"} for r in rules)
