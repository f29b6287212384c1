"""POST /sms/africastalking/<token>(/status) and /sms/android: who may call, bad input, statuses, last contact."""
from __future__ import annotations

import ipaddress
import json
import time
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select

from gateway import channels
from gateway.outbound import jobs, queues
from gateway.people.contacts import number_of
from gateway.models import Contact, Message
from tests.conftest import make_stack_app
from tests.fakes.africastalking_api import FakeAfricasTalking
from tests.fakes.android_api import FakeAndroidPhone
from tests.helpers import change_settings
from tests.wires import AT_TOKEN, channel_settings

A = "+265991234567"


@pytest.fixture
def fakes() -> Iterator[tuple[FakeAfricasTalking, FakeAndroidPhone]]:
    """A fake Africa's Talking and a fake phone."""
    with FakeAfricasTalking() as at, FakeAndroidPhone() as phone:
        yield at, phone


@pytest.fixture
def capp(db_url: str, redis_url: str | None, tmp_path, fakes) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """The app with both local channels connected to the fakes, on both stacks."""
    at, phone = fakes
    app = make_stack_app(db_url, redis_url, tmp_path, **channel_settings(at, phone))
    yield app
    app.extensions["gateway"].engine.dispose()


def count(app: Any, **where: Any) -> int:
    with app.extensions["gateway"].sessions() as s:
        return s.scalar(select(func.count()).select_from(Message).filter_by(**where))


def contacts(app: Any) -> int:
    with app.extensions["gateway"].sessions() as s:
        return s.scalar(select(func.count()).select_from(Contact))


def at_sms(text: str = "JOIN", **extra: str) -> dict[str, str]:
    return {"from": A, "to": "12345", "text": text, "date": "2026-11-23 10:00:00", "id": f"ATid-{time.time_ns()}",
            "linkId": "link-1", **extra}


def work(app: Any) -> None:
    with app.app_context():
        queues.work_burst(app.extensions["gateway"].redis)


# -- Africa's Talking --------------------------------------------------------------------------


def test_at_inbound_is_stored_handled_and_answered_through_at(capp, fakes) -> None:
    at, phone = fakes
    response = capp.test_client().post(f"/sms/africastalking/{AT_TOKEN}", data=at_sms())
    assert response.status_code == 200
    assert count(capp, direction="in", channel="africastalking") == 1
    assert count(capp, direction="out", status="queued", channel="africastalking") == 1
    work(capp)
    assert [(m["to"], m["from"]) for m in at.messages] == [(A, "NETWORK")]
    assert at.messages[0]["message"].startswith("Our Network: you joined")
    assert phone.messages == []  # the reply left by the channel the supporter wrote to
    with capp.extensions["gateway"].sessions() as s:
        reply = s.scalars(select(Message).where(Message.direction == "out")).one()
    assert (reply.status, reply.provider_id) == ("sent", at.messages[0]["messageId"])


def test_at_repeated_id_is_dropped(capp) -> None:
    client, form = capp.test_client(), at_sms()
    assert client.post(f"/sms/africastalking/{AT_TOKEN}", data=form).status_code == 200
    assert client.post(f"/sms/africastalking/{AT_TOKEN}", data=form).status_code == 200
    assert count(capp, direction="in") == 1 and count(capp, direction="out") == 1


@pytest.mark.parametrize("token", ["wrong", AT_TOKEN + "x", AT_TOKEN[:-1] + AT_TOKEN[-1].upper()])
def test_at_wrong_token_is_403_and_stores_nothing(capp, token) -> None:
    client = capp.test_client()
    assert client.post(f"/sms/africastalking/{token}", data=at_sms()).status_code == 403
    assert client.post(f"/sms/africastalking/{token}/status", data={"id": "x", "status": "Success"}).status_code == 403
    assert count(capp) == 0 and contacts(capp) == 0


def test_at_without_a_token_setting_refuses_every_callback(capp) -> None:
    change_settings(capp, at_webhook_token=None)
    assert capp.test_client().post(f"/sms/africastalking/{AT_TOKEN}", data=at_sms()).status_code == 403
    assert count(capp) == 0


def test_at_allow_list(capp) -> None:
    client = capp.test_client()
    networks = (ipaddress.ip_network("196.201.214.0/24"), ipaddress.ip_network("10.1.2.3/32"))
    change_settings(capp, at_allowed_ips=networks)  # AT_ALLOWED_IPS="196.201.214.0/24, 10.1.2.3"
    assert client.post(f"/sms/africastalking/{AT_TOKEN}", data=at_sms()).status_code == 403  # from 127.0.0.1
    assert count(capp) == 0
    ok = client.post(f"/sms/africastalking/{AT_TOKEN}", data=at_sms(), environ_base={"REMOTE_ADDR": "196.201.214.200"})
    assert ok.status_code == 200 and count(capp, direction="in") == 1


@pytest.mark.parametrize("form", [
    {}, {"text": "JOIN", "id": "a1"}, {"from": A, "text": "JOIN"}, {"from": A, "id": "a2"},
])
def test_at_missing_fields_are_400_and_store_nothing(capp, form) -> None:
    response = capp.test_client().post(f"/sms/africastalking/{AT_TOKEN}", data=form)
    assert response.status_code == 400
    assert count(capp) == 0 and contacts(capp) == 0


def test_at_malformed_bodies_are_4xx(capp) -> None:
    client = capp.test_client()
    url = f"/sms/africastalking/{AT_TOKEN}"
    for data, ctype in [(b"\xff\xfe%%%", "application/x-www-form-urlencoded"), (b"{not json", "application/json"),
                        (b"x" * 70000, "application/x-www-form-urlencoded")]:
        response = client.post(url, data=data, content_type=ctype)
        assert 400 <= response.status_code < 500, (data[:10], response.status_code)
        response = client.post(url + "/status", data=data, content_type=ctype)
        assert 400 <= response.status_code < 500
    assert count(capp) == 0 and contacts(capp) == 0


def test_at_delivery_reports_move_status_forward_only(capp, fakes) -> None:
    at, _ = fakes
    client = capp.test_client()
    client.post(f"/sms/africastalking/{AT_TOKEN}", data=at_sms())
    work(capp)
    mid = at.messages[0]["messageId"]
    status = f"/sms/africastalking/{AT_TOKEN}/status"
    assert client.post(status, data={"id": mid, "status": "Success", "phoneNumber": A}).status_code == 200
    assert client.post(status, data={"id": mid, "status": "Sent", "phoneNumber": A}).status_code == 200
    assert count(capp, direction="out", status="delivered") == 1
    assert client.post(status, data={"id": "unknown", "status": "Failed"}).status_code == 200  # ignored
    assert client.post(status, data={"id": mid, "status": "Teleported"}).status_code == 400
    assert client.post(status, data={"status": "Success"}).status_code == 400
    assert count(capp, direction="out", status="delivered") == 1


def test_at_failure_reason_is_kept(capp, fakes) -> None:
    at, _ = fakes
    client = capp.test_client()
    client.post(f"/sms/africastalking/{AT_TOKEN}", data=at_sms())
    work(capp)
    client.post(f"/sms/africastalking/{AT_TOKEN}/status",
                data={"id": at.messages[0]["messageId"], "status": "Failed", "failureReason": "DeliveryFailure"})
    with capp.extensions["gateway"].sessions() as s:
        reply = s.scalars(select(Message).where(Message.direction == "out")).one()
    assert (reply.status, reply.error_code) == ("failed", "DeliveryFailure")


# -- Android phones ------------------------------------------------------------------------------


def post(app: Any, body: bytes, headers: dict[str, str], query: str = "") -> Any:
    return app.test_client().post("/sms/android" + query, data=body, headers=headers)


def test_android_received_is_answered_through_the_same_phone(capp, fakes) -> None:
    at, phone = fakes
    body, headers = phone.received(A, "JOIN")
    assert post(capp, body, headers).status_code == 200
    work(capp)
    assert [m["to"] for m in phone.messages] == [A] and at.messages == []
    assert phone.messages[0]["text"].startswith("Our Network: you joined")
    with capp.extensions["gateway"].sessions() as s:
        reply = s.scalars(select(Message).where(Message.direction == "out")).one()
    assert (reply.channel, reply.status, reply.provider_id) == ("android", "sent", phone.messages[0]["id"])


def test_android_local_format_number_uses_default_country(capp, fakes) -> None:
    _, phone = fakes
    assert post(capp, *phone.received("0991234567", "JOIN")).status_code == 200
    with capp.extensions["gateway"].sessions() as s:
        assert number_of(s.scalars(select(Contact)).one()) == A


def test_android_repeated_event_is_dropped_but_identical_texts_are_not(capp, fakes) -> None:
    _, phone = fakes
    first = phone.received(A, "HELP", event_id="evt-1")
    assert post(capp, *first).status_code == 200 and post(capp, *first).status_code == 200  # the app retried
    assert post(capp, *phone.received(A, "HELP", event_id="evt-2")).status_code == 200  # same words, new text
    assert count(capp, direction="in") == 2


@pytest.mark.parametrize("tamper", ["signature", "key", "body", "old", "future", "missing", "bad-timestamp"])
def test_android_bad_signature_is_403_and_stores_nothing(capp, fakes, tamper) -> None:
    _, phone = fakes
    body, headers = phone.received(A, "JOIN", key="another-key" if tamper == "key" else None,
                                   timestamp=int(time.time()) - 600 if tamper == "old"
                                   else int(time.time()) + 600 if tamper == "future" else None)
    if tamper == "signature":
        headers["X-Signature"] = "0" * 64
    elif tamper == "body":
        body = body.replace(b"JOIN", b"STOP")
    elif tamper == "missing":
        del headers["X-Signature"]
    elif tamper == "bad-timestamp":
        headers["X-Timestamp"] = "yesterday"
    assert post(capp, body, headers).status_code == 403
    assert count(capp) == 0 and contacts(capp) == 0


def test_android_without_a_signing_key_refuses(db_url, redis_url, tmp_path, fakes) -> None:
    at, phone = fakes
    app = make_stack_app(db_url, redis_url, tmp_path, **{**channel_settings(at, phone), "ANDROID_WEBHOOK_SIGNING_KEY": None})
    try:
        assert post(app, *phone.received(A, "JOIN")).status_code == 403
        assert count(app) == 0
    finally:
        app.extensions["gateway"].engine.dispose()


@pytest.mark.parametrize("payload", [
    b"{not json", b"[]", b'"text"', b'{"event": "sms:received"}', b'{"event": "sms:received", "payload": []}',
    b'{"event": "sms:received", "id": "e1", "payload": {"message": "JOIN"}}',
    b'{"event": "sms:received", "id": "e1", "payload": {"phoneNumber": "+265991234567", "receivedAt": "2026-11-23T10:00:00Z"}}',
    b'{"event": "sms:received", "id": "e1", "payload": {"phoneNumber": 5, "message": "JOIN", "receivedAt": "2026-11-23T10:00:00Z"}}',
    b'{"event": "sms:received", "id": "e1", "payload": {"phoneNumber": "+265991234567", "message": "JOIN", "receivedAt": "noon"}}',
    b'{"event": "sms:received", "payload": {"phoneNumber": "+265991234567", "message": "JOIN", "receivedAt": "2026-11-23T10:00:00Z"}}',
    b'{"event": "sms:delivered", "id": "e2", "payload": {"phoneNumber": "+265991234567"}}',
    b'{"id": "e3", "payload": {}}', b"\xff\xfe\x00",
])
def test_android_malformed_or_incomplete_is_400_and_stores_nothing(capp, fakes, payload) -> None:
    _, phone = fakes
    from gateway.channels.android import sign

    ts = str(int(time.time()))
    response = post(capp, payload, {"X-Timestamp": ts, "X-Signature": sign(phone.signing_key, payload, ts),
                                    "Content-Type": "application/json"})
    assert response.status_code == 400
    assert count(capp) == 0 and contacts(capp) == 0


def test_android_unknown_phone_is_403_like_a_bad_signature(capp, fakes) -> None:
    """Was 404; now 403 so that the URL does not tell which phone names exist (M7)."""
    _, phone = fakes
    assert post(capp, *phone.received(A, "JOIN"), query="?phone=nokia").status_code == 403
    assert count(capp) == 0


def test_android_status_events_move_status_forward(capp, fakes) -> None:
    _, phone = fakes
    post(capp, *phone.received(A, "JOIN"))
    work(capp)
    mid = phone.messages[0]["id"]
    for event in ("sms:delivered", "sms:sent"):  # a late "sent" never moves it back
        body, headers = phone.webhook(event, {"messageId": mid, "phoneNumber": A, "simNumber": 1})
        assert post(capp, body, headers).status_code == 200
    assert count(capp, direction="out", status="delivered") == 1
    body, headers = phone.webhook("sms:failed", {"messageId": "gw-999999", "phoneNumber": A, "reason": "RESULT_ERROR_NO_SERVICE"})
    assert post(capp, body, headers).status_code == 200  # unknown id: ignored


def test_android_failed_event_keeps_its_reason(capp, fakes) -> None:
    _, phone = fakes
    post(capp, *phone.received(A, "HELP"))
    work(capp)
    body, headers = phone.webhook("sms:failed", {"messageId": phone.messages[0]["id"], "phoneNumber": A,
                                                 "reason": "RESULT_ERROR_GENERIC_FAILURE"})
    post(capp, body, headers)
    with capp.extensions["gateway"].sessions() as s:
        reply = s.scalars(select(Message).where(Message.direction == "out")).one()
    assert (reply.status, reply.error_code) == ("failed", "RESULT_ERROR_GEN")  # error_code holds 16 characters


def test_quiet_phones_on_healthz_without_their_names(capp, fakes) -> None:
    """The open health check counts phones not heard from in 15 minutes; it names none (L7)."""
    _, phone = fakes
    client = capp.test_client()
    health = client.get("/healthz")
    assert health.status_code == 200 and health.get_json()["phones"] == {"count": 1, "quiet": 1}
    assert "android" not in health.get_data(as_text=True)
    body, headers = phone.webhook("system:ping", {"health": {"status": "pass"}})
    assert post(capp, body, headers).status_code == 200
    health = client.get("/healthz")
    # With Redis and no `flask worker` running, /healthz also says "no worker is running" (test_metrics.py).
    body = {k: v for k, v in health.get_json().items() if k not in ("status", "degraded", "waiting", "spool_kept",
                                                                     "workers")}
    assert body == {"database": "ok", "queue": "ok", "phones": {"count": 1, "quiet": 0}}
    with capp.app_context():
        before = channels.last_seen(capp.extensions["gateway"].redis, ["android"])["android"]
    time.sleep(0.01)
    post(capp, *phone.received(A, "HELP"))
    work(capp)  # a send the phone took counts as contact too
    with capp.app_context():
        after = channels.last_seen(capp.extensions["gateway"].redis, ["android"])["android"]
    assert before is not None and after is not None and after > before


def test_unknown_event_is_accepted_and_ignored(capp, fakes) -> None:
    _, phone = fakes
    body, headers = phone.webhook("mms:received", {"messageId": "m"})
    assert post(capp, body, headers).status_code == 200
    assert count(capp) == 0


def test_replies_wait_in_the_database_when_the_queue_is_away(capp, fakes, monkeypatch) -> None:
    """Enqueueing after commit fails: the reply stays queued and the reconciler sends it."""
    at, _ = fakes

    def broken(*args: Any, **kwargs: Any) -> int:
        raise ConnectionError("redis away")

    monkeypatch.setattr(queues, "enqueue_ids", broken)
    assert capp.test_client().post(f"/sms/africastalking/{AT_TOKEN}", data=at_sms()).status_code == 200
    monkeypatch.undo()
    assert count(capp, direction="out", status="queued") == 1
    with capp.app_context():
        jobs.reconcile(force=True)
    work(capp)
    assert len(at.messages) == 1 and count(capp, direction="out", status="sent") == 1
    assert json.dumps(at.messages)  # recorded as the SDK sent it


def test_console_dashboard_shows_each_phones_last_contact(capp, fakes) -> None:
    from tests.conftest import Auth

    _, phone = fakes
    client = capp.test_client()
    Auth(capp, client).login("viewer")
    page = client.get("/").get_data(as_text=True)
    assert 'id="phones"' in page and "never" in page
    body, headers = phone.webhook("system:ping", {"health": {"status": "pass"}})
    post(capp, body, headers)
    page = client.get("/").get_data(as_text=True)
    assert "never" not in page.split('id="phones"')[1].split("</table>")[0]


def test_console_inbox_reply_leaves_by_the_phone_the_supporter_wrote_to(capp, fakes) -> None:
    from tests.conftest import Auth, csrf_from

    at, phone = fakes
    assert post(capp, *phone.received(A, "the clinic did not come today")).status_code == 200
    client = capp.test_client()
    Auth(capp, client).login("organizer")
    token = csrf_from(client.get("/inbox").get_data(as_text=True))
    with capp.extensions["gateway"].sessions() as s:
        inbound_id = s.scalars(select(Message.id).where(Message.inbox_status == "open")).one()
    response = client.post(f"/inbox/{inbound_id}/reply", data={"csrf_token": token, "body": "We will call them."})
    assert response.status_code == 302
    assert [(m["to"], m["text"]) for m in phone.messages] == [(A, "We will call them.")] and at.messages == []
    with capp.extensions["gateway"].sessions() as s:
        reply = s.scalars(select(Message).where(Message.reply_to_id == inbound_id,
                                                Message.body == "We will call them.")).one()
    assert (reply.channel, reply.status, reply.provider_id) == ("android", "sent", phone.messages[0]["id"])
