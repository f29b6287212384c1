"""Console accounts: login, roles, CSRF, lockout, secure headers, the users CLI."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.models import AuditEvent, User
from tests.conftest import PASSWORD, Auth, csrf_from


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


# -- M2: lockout that holds under concurrency, throttles per address and overall, no timing tell ---

def _post_login(client, email: str, password: str, address: str = "127.0.0.1"):  # type: ignore[no-untyped-def]
    """A login POST from `address`, without the CSRF round trip (the app under test has it off)."""
    return client.post("/login", data={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def test_concurrent_wrong_passwords_still_lock_after_five(app, auth, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten guesses fired at once (ten web processes, ten addresses) get at most five password checks."""
    import threading

    from gateway.people import accounts

    app.config["WTF_CSRF_ENABLED"] = False
    email = auth.user("admin")
    with app.extensions["gateway"].sessions() as s:
        real_hash = s.scalars(select(User.password_hash).where(User.email == email)).one()
    guesses: list[str] = []
    check = accounts.check_password_hash

    def counting(pwhash: str, password: str) -> bool:
        if pwhash == real_hash:
            guesses.append(password)
        return check(pwhash, password)

    monkeypatch.setattr(accounts, "check_password_hash", counting)
    start = threading.Barrier(10)
    codes: list[int] = []

    def guess(i: int) -> None:
        client = app.test_client()
        start.wait()
        codes.append(_post_login(client, email, f"guess number {i}", f"10.0.0.{i}").status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [401] * 10
    assert len(guesses) <= accounts.MAX_FAILED_LOGINS, guesses
    assert _post_login(app.test_client(), email, PASSWORD, "10.0.1.1").status_code == 401  # locked


def test_one_password_hash_per_attempt_whatever_the_account(app, client, auth,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown, locked, inactive or real: each attempt costs exactly one hash, so timing tells nothing."""
    from datetime import timedelta

    from gateway.people import accounts
    from gateway.models import utcnow

    app.config["WTF_CSRF_ENABLED"] = False
    locked, inactive, fine = auth.user("admin"), auth.user("organizer"), auth.user("viewer")
    with app.extensions["gateway"].sessions() as s, s.begin():
        s.scalars(select(User).where(User.email == locked)).one().locked_until = utcnow() + timedelta(minutes=10)
        s.scalars(select(User).where(User.email == inactive)).one().active = False
    hashes: list[str] = []
    check, generate = accounts.check_password_hash, accounts.generate_password_hash
    monkeypatch.setattr(accounts, "check_password_hash", lambda h, p: hashes.append("check") or check(h, p))
    monkeypatch.setattr(accounts, "generate_password_hash", lambda p: hashes.append("generate") or generate(p))
    for email, password, code in [("nobody@example.org", "a guess", 401), (locked, PASSWORD, 401),
                                  (inactive, PASSWORD, 401), (fine, "a guess", 401), (fine, PASSWORD, 302)]:
        hashes.clear()
        response = _post_login(app.test_client(), email, password)
        assert (response.status_code, hashes) == (code, ["check"]), email


def test_one_address_is_throttled_before_any_account_is_touched(app, auth) -> None:
    """Ten tries a minute from one address; the eleventh is refused without touching the account."""
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    codes = [_post_login(client, f"guess{i}@example.org", "a guess", "198.51.100.7").status_code
             for i in range(11)]
    assert codes == [401] * 10 + [429]
    email = auth.user("organizer")
    throttled = _post_login(client, email, "a wrong password", "198.51.100.7")
    assert throttled.status_code == 429 and b"Too many login attempts" in throttled.data
    with app.extensions["gateway"].sessions() as s:
        assert s.scalars(select(User.failed_logins).where(User.email == email)).one() == 0  # not counted
    assert _post_login(client, email, PASSWORD, "198.51.100.8").status_code == 302  # another address


def test_logins_are_throttled_overall(app) -> None:
    """Guessing spread over many addresses meets the global limit (LOGIN_RATE_GLOBAL)."""
    app.config["WTF_CSRF_ENABLED"] = False
    app.config["LOGIN_RATE_GLOBAL"] = "5 per minute"
    client = app.test_client()
    codes = [_post_login(client, "someone@example.org", "a guess", f"203.0.113.{i}").status_code for i in range(6)]
    assert codes == [401] * 5 + [429]


# -- L12: failed logins cannot grow the audit log without bound, nor store what was typed ---------

def test_failed_logins_to_unknown_accounts_are_audited_sparingly(app) -> None:
    """A flood of made-up emails (or a password typed into the email box) leaves a few digests only."""
    app.config.update(WTF_CSRF_ENABLED=False, LOGIN_RATE_PER_ADDRESS="1000 per minute",
                      LOGIN_AUDIT_UNKNOWN="5 per hour")
    client = app.test_client()
    typed = [f"MySecretPassw0rd{i}" for i in range(12)]
    for i, text in enumerate(typed):
        assert _post_login(client, text, "whatever", f"192.0.2.{i}").status_code == 401
    with app.extensions["gateway"].sessions() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "login.failed")).all()
    assert 1 <= len(events) <= 5
    kept = " ".join(f"{e.actor} {e.detail}" for e in events)
    assert "MySecretPassw0rd" not in kept and "email_digest" in kept


def test_wrong_passwords_on_a_real_account_are_audited_with_its_email(app, auth) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    email = auth.user("organizer")
    for _ in range(5):
        assert _post_login(app.test_client(), email, "a wrong password").status_code == 401
    with app.extensions["gateway"].sessions() as s:
        events = [(e.actor, e.action, e.detail.get("locked")) for e in
                  s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert events == [(email, "login.failed", None)] * 4 + [(email, "login.failed", True)]


# -- L3: sessions end on the server, have an absolute lifetime, and are Secure behind a TLS proxy -

def test_logout_ends_the_session_on_the_server(app, client, auth) -> None:
    """A copy of the session cookie (a shared computer, a stolen backup) is dead after logout."""
    auth.login("organizer")
    copied = client.get_cookie("session").value  # type: ignore[union-attr]
    assert client.post("/logout", data={"csrf_token": auth.csrf()}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", copied)
    response = thief.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert auth.login("organizer").status_code == 302 and client.get("/").status_code == 200  # a new login works


def test_a_session_ends_twelve_hours_after_login_however_active(client, auth, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request slides the 8-hour expiry, but 12 hours after the login the session is over."""
    import gateway.web.console as console

    auth.login("viewer")
    real = console.clock
    for hours, code in ((4, 200), (8, 200), (11.5, 200), (12.5, 302)):
        monkeypatch.setattr(console, "clock", lambda h=hours: real() + h * 3600)
        assert client.get("/").status_code == code, hours


@pytest.mark.parametrize(("proto", "secure"), [("https", True), ("http", False)])
def test_session_cookie_is_secure_when_a_proxy_says_tls(app, proto: str, secure: bool) -> None:
    """No PUBLIC_BASE_URL, TLS ended at the proxy (PROXY_FIX_HOPS=1): the cookie is still Secure."""
    from gateway import create_app

    proxied = create_app({**app.config, "PUBLIC_BASE_URL": None, "PROXY_FIX_HOPS": 1, "WTF_CSRF_ENABLED": False})
    try:
        email = Auth(proxied, proxied.test_client()).user("viewer")
        response = proxied.test_client().post("/login", data={"email": email, "password": PASSWORD},
                                              headers={"X-Forwarded-Proto": proto, "X-Forwarded-For": "10.1.1.1"})
        assert response.status_code == 302
        assert ("Secure" in response.headers["Set-Cookie"]) is secure
    finally:
        proxied.extensions["gateway"].engine.dispose()
