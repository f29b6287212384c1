"""Property-based: any form at the Twilio webhooks gets an answer below 500 and leaves nothing half-written.

FUZZ_EXAMPLES sets how many requests each property sends (default 200 per database; a fault run
uses 10,000).
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from gateway.models import Message
from tests.conftest import PUBLIC_BASE, TWILIO_TOKEN

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
FIELDS = st.sampled_from(["From", "To", "Body", "MessageSid", "SmsSid", "MessageStatus", "ErrorCode",
                          "NumMedia", "AccountSid"])
VALUES = st.one_of(
    st.text(max_size=40),
    st.text(max_size=2000),
    st.sampled_from(["+265991234567", "0991234567", "whatsapp:+265991234567", "40404", "", "+",
                     "JOIN", "STOP", "REPORT CLINIC ZOMBA NO", "delivered", "failed", "SM" + "a" * 32,
                     "\x00", "‮", "😀" * 400]),
)
FORMS = st.lists(st.tuples(st.one_of(FIELDS, st.text(max_size=12)), VALUES), max_size=8)
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _post(client, path: str, pairs: list[tuple[str, str]], sign: bool, content_type: str | None):  # type: ignore[no-untyped-def]
    form: dict[str, list[str]] = {}
    for k, v in pairs:
        form.setdefault(k, []).append(v)
    headers = {}
    if sign:  # signed the way Twilio signs, every value of a repeated name included
        headers["X-Twilio-Signature"] = RequestValidator(TWILIO_TOKEN).compute_signature(
            PUBLIC_BASE + path, MultiDict(pairs))
    if content_type is None:
        return client.post(path, data=form, headers=headers)
    return client.post(path, data="&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass"),
                       content_type=content_type, headers=headers)


@FUZZ
@given(pairs=FORMS, sign=st.booleans(),
       content_type=st.sampled_from([None, None, "application/json", "text/plain", "multipart/form-data"]))
def test_inbound_never_fails_and_never_half_writes(app, client, pairs, sign, content_type) -> None:
    response = _post(client, "/sms/twilio", pairs, sign, content_type)
    assert response.status_code < 500
    first_from = next((v for k, v in pairs if k == "From"), "")
    if sign and content_type is None and first_from.strip():
        assert response.status_code == 200  # a signed form with a sender is always answered
    with app.extensions["gateway"].sessions() as s:
        unhandled = s.scalar(select(func.count()).select_from(Message).where(
            Message.direction == "in", Message.handled_at.is_(None), Message.contact_id.is_not(None)))
    assert unhandled == 0  # stored means handled, in the same request


@FUZZ
@given(pairs=FORMS, sign=st.booleans())
def test_status_callback_never_fails(client, pairs, sign) -> None:
    assert _post(client, "/sms/twilio/status", pairs, sign, None).status_code < 500
