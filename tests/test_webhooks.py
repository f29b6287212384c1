"""POST /sms/twilio and /sms/twilio/status with real Twilio signatures, and GET /healthz."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import count

import pytest
from sqlalchemy import func, select

from gateway.people.contacts import number_of
from gateway.models import Contact, Message
from tests.conftest import PUBLIC_BASE
from tests.helpers import change_settings, sign

_sids = count(1)


def inbound(client, params: dict[str, str], *, url: str = PUBLIC_BASE + "/sms/twilio",
            signature: str | None = "sign"):  # type: ignore[no-untyped-def]
    headers = {} if signature is None else {
        "X-Twilio-Signature": sign(url, params) if signature == "sign" else signature}
    return client.post("/sms/twilio", data=params, headers=headers)


def sms(body: str, sender: str = "+265991234567", **extra: str) -> dict[str, str]:
    return {"MessageSid": f"SM{next(_sids):032x}", "From": sender, "To": "+15005550006", "Body": body, **extra}


def replies(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.mimetype == "application/xml"
    return [m.text or "" for m in ET.fromstring(response.data).iter("Message")]


def stored(app, **where) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["gateway"].sessions() as s:
        q = select(func.count()).select_from(Message).filter_by(**where)
        return s.scalar(q)


def test_valid_signature_gets_twiml_replies(app, client) -> None:
    response = inbound(client, sms("JOIN"))
    assert response.status_code == 200
    assert replies(response)[0].startswith("Our Network: you joined our SMS alerts")
    assert stored(app, direction="in") == 1 and stored(app, direction="out", status="sent") == 1


@pytest.mark.parametrize("signature", [None, "", "bm90IGEgc2lnbmF0dXJl"])
def test_missing_or_wrong_signature_is_403_and_stores_nothing(app, client, signature) -> None:
    assert inbound(client, sms("JOIN"), signature=signature).status_code == 403
    assert stored(app) == 0


def test_signature_for_another_url_is_403(app, client) -> None:
    response = inbound(client, sms("JOIN"), url="https://evil.example.org/sms/twilio")
    assert response.status_code == 403


def test_tampered_body_is_403(app, client) -> None:
    params = sms("JOIN")
    signature = sign(PUBLIC_BASE + "/sms/twilio", params)
    response = client.post("/sms/twilio", data={**params, "Body": "STOP"},
                           headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


def test_request_url_is_used_without_public_base_url(app, client) -> None:
    change_settings(app, public_base_url=None)
    assert inbound(client, sms("HELP"), url="http://localhost/sms/twilio").status_code == 200


def test_duplicate_message_sid_is_dropped(app, client) -> None:
    params = sms("JOIN")
    first, second = inbound(client, params), inbound(client, params)
    assert replies(first) and replies(second) == []
    assert stored(app, direction="in") == 1 and stored(app, direction="out") == 1


@pytest.mark.parametrize("body", [
    "x" * 1600 + "y" * 400,                # longer than any SMS: kept, cut to 1,600
    "ملاحظة: العيادة مغلقة 🏥🚫",          # right-to-left text and emoji
    "hello\x00world",                      # a null byte
    "{[~€^|]} \\ report",                  # GSM-7 extension characters
    "",                                    # an empty body (an MMS without text)
    "   ",
])
def test_odd_bodies_get_an_answer_below_500(app, client, body: str) -> None:
    response = inbound(client, sms(body))
    assert response.status_code == 200
    assert len(replies(response)) <= 1
    with app.extensions["gateway"].sessions() as s:
        kept = s.scalars(select(Message.body).where(Message.direction == "in")).one()
    assert kept is not None and "\x00" not in kept and len(kept) <= 1600


def test_missing_from_is_400(app, client) -> None:
    params = {"MessageSid": "SM" + "f" * 32, "Body": "JOIN", "To": "+15005550006"}
    assert inbound(client, params).status_code == 400
    assert stored(app) == 0


def test_missing_body_is_answered(app, client) -> None:
    params = {"MessageSid": "SM" + "e" * 32, "From": "+265991234567", "To": "+15005550006"}
    assert inbound(client, params).status_code == 200


def test_whatsapp_prefix_and_short_code_and_garbage_senders(app, client) -> None:
    assert replies(inbound(client, sms("HELP", sender="whatsapp:+265991234567")))
    assert replies(inbound(client, sms("HELP", sender="40404")))
    assert inbound(client, sms("HELP", sender="not-a-number")).status_code == 200
    with app.extensions["gateway"].sessions() as s:
        numbers = {number_of(c) for c in s.scalars(select(Contact))}
        channels = set(s.scalars(select(Message.medium).where(Message.direction == "in")))
    assert numbers == {"+265991234567", "40404"} and channels == {"sms", "whatsapp"}
    assert stored(app, direction="in") == 3  # the garbage one is kept too, unhandled


def test_local_format_number_is_normalised(app, client) -> None:
    inbound(client, sms("JOIN", sender="0991234567"))
    with app.extensions["gateway"].sessions() as s:
        assert [number_of(c) for c in s.scalars(select(Contact))] == ["+265991234567"]


def status(client, params: dict[str, str], signature: str | None = "sign"):  # type: ignore[no-untyped-def]
    url = PUBLIC_BASE + "/sms/twilio/status"
    headers = {"X-Twilio-Signature": sign(url, params)} if signature == "sign" else {}
    return client.post("/sms/twilio/status", data=params, headers=headers)


def test_status_callbacks_only_move_forward(app, client) -> None:
    with app.extensions["gateway"].sessions() as s, s.begin():
        s.add(Message(direction="out", channel="twilio", provider_id="SM" + "1" * 32, body="hi", status="sent"))
    sid = "SM" + "1" * 32
    assert status(client, {"MessageSid": sid, "MessageStatus": "delivered"}).status_code == 204
    assert status(client, {"MessageSid": sid, "MessageStatus": "sent"}).status_code == 204  # late, older
    assert stored(app, provider_id=sid, status="delivered") == 1
    failed = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "failed", "ErrorCode": "30003"}
    status(client, failed)
    assert stored(app, provider_id=sid, status="delivered") == 1  # final stays final


def test_status_callback_errors(app, client) -> None:
    unknown = {"MessageSid": "SM" + "9" * 32, "MessageStatus": "delivered"}
    assert status(client, unknown).status_code == 204
    assert status(client, {"MessageStatus": "delivered"}).status_code == 400
    assert status(client, unknown, signature=None).status_code == 403


def test_wrong_method_and_content_type_are_4xx(client) -> None:
    assert client.get("/sms/twilio").status_code == 405
    response = client.post("/sms/twilio", data=b"\xff\xfe" * 10, content_type="application/octet-stream",
                           headers={"X-Twilio-Signature": "x"})
    assert response.status_code == 403


def test_healthz(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok", "database": "ok", "queue": "ok"}


def test_oversized_webhook_is_413_and_stores_nothing(app, client) -> None:
    params = sms("x" * 70_000)
    assert inbound(client, params).status_code == 413
    assert stored(app) == 0


@pytest.mark.parametrize("sid", ["SM" + "a" * 200, "SM\x00abc", "SM\u2028x"])
def test_a_signed_text_with_an_odd_message_id_is_kept_once(app, client, sid: str) -> None:
    """No real MessageSid looks like these, but a signed text is kept: as the id's digest, so a repeat drops."""
    params = sms("JOIN") | {"MessageSid": sid}
    assert replies(inbound(client, params))  # answered
    assert inbound(client, params).status_code == 200
    with app.extensions["gateway"].sessions() as s:
        ids = s.scalars(select(Message.provider_id).where(Message.direction == "in")).all()
    assert len(ids) == 1 and ids[0].startswith("sha256:") and len(ids[0]) <= 64


WEBHOOK_ENDPOINTS = {"twilio.twilio_inbound", "twilio.twilio_status",
                     "africastalking.africastalking_inbound", "africastalking.africastalking_status",
                     "android.android_event"}


def test_webhooks_are_served_apart_without_the_console_and_api_hooks(app, client) -> None:
    hooks = app.extensions["webhooks"]
    assert {r.endpoint for r in hooks.url_map.iter_rules()} == WEBHOOK_ENDPOINTS
    assert all(r.rule.startswith("/sms/") and r.methods == {"POST"} for r in hooks.url_map.iter_rules())
    assert not [r.rule for r in app.url_map.iter_rules() if r.rule.startswith("/sms/")]  # nothing else answers there
    response = inbound(client, sms("HELP"))
    assert response.status_code == 200 and len(replies(response)) == 1 and stored(app, direction="in") == 1
    # No cookie session read or written, none of the console's page headers: its hooks did not run.
    assert "Set-Cookie" not in response.headers and "Content-Security-Policy" not in response.headers
    page = client.get("/login")  # while a console page still has all of them
    assert "Content-Security-Policy" in page.headers and "Set-Cookie" in page.headers


def test_a_webhook_runs_in_the_apps_context_without_flasks_request_machinery(app, client, monkeypatch) -> None:
    """Each webhook is a function of Werkzeug's request inside the app's context: services() and g
    work there, and no Flask request context is pushed (its cost is why)."""
    import flask

    from gateway import services

    seen: dict[str, object] = {}
    original = app.extensions["gateway"].inbound.receive.__func__

    def spying(self, sms, **kw):  # type: ignore[no-untyped-def]
        seen["request_context"] = flask.has_request_context()
        seen["app"] = flask.current_app._get_current_object()
        seen["services"] = services()
        return original(self, sms, **kw)

    monkeypatch.setattr(type(app.extensions["gateway"].inbound), "receive", spying)
    response = inbound(client, sms("HELP"))
    assert response.status_code == 200 and len(replies(response)) == 1
    assert seen["request_context"] is False and seen["app"] is app
    assert seen["services"] is app.extensions["gateway"]
    assert client.post("/sms/nowhere").status_code == 404
    assert client.get("/sms/twilio/status").status_code == 405 and client.put("/sms/android").status_code == 405


def test_an_error_in_a_webhook_is_a_logged_500_and_its_teardown_still_runs(app, client, monkeypatch, caplog) -> None:
    torn: list[object] = []
    app.teardown_appcontext(torn.append)  # the app fixture is this test's own

    def broken(*args, **kw):  # type: ignore[no-untyped-def]
        raise RuntimeError("the database said no")

    monkeypatch.setattr(type(app.extensions["gateway"].inbound), "receive", broken)
    with pytest.raises(RuntimeError):  # under TESTING it propagates, as Flask's does
        inbound(client, sms("HELP"))
    assert isinstance(torn[-1], RuntimeError)
    monkeypatch.setattr(app, "testing", False)
    response = inbound(client, sms("HELP"))
    assert response.status_code == 500 and b"the database said no" not in response.data
    assert isinstance(torn[-1], RuntimeError) and len(torn) == 2
    assert "Exception on /sms/twilio [POST]" in caplog.text and "the database said no" in caplog.text


def test_a_webhook_route_outside_the_webhook_prefix_stops_the_start(app, monkeypatch) -> None:
    from gateway.channels import hooks

    def stray(request):  # type: ignore[no-untyped-def]
        return None

    monkeypatch.setitem(hooks.WEBHOOKS, "stray", [("/webhooks/stray", stray)])
    with pytest.raises(RuntimeError, match="outside /sms/"):
        hooks.Webhooks(app, before=[])


def test_behind_a_proxy_the_webhook_checks_the_signature_against_the_address_the_proxy_was_asked_for(
        db_url, tmp_path) -> None:
    from tests.conftest import make_app

    app = make_app(db_url, tmp_path, PUBLIC_BASE_URL=None, PROXY_FIX_HOPS="1")
    client = app.test_client()
    signed_for = "https://gw.example.org/sms/twilio"  # what Twilio was given; the proxy forwards to http://localhost
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gw.example.org"}
    params = sms("HELP")
    ok = client.post("/sms/twilio", data=params, headers={"X-Twilio-Signature": sign(signed_for, params), **forwarded})
    assert ok.status_code == 200 and len(replies(ok)) == 1
    params = sms("HELP")  # the same without the proxy's headers: the URL differs, so does the signature
    assert client.post("/sms/twilio", data=params, headers={"X-Twilio-Signature": sign(signed_for, params)}
                       ).status_code == 403
    app.extensions["gateway"].engine.dispose()
