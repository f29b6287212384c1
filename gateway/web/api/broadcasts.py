"""/api/v1/broadcasts: preview, create, read, launch, cancel."""
from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from gateway import services
from gateway.channels import sender_name
from gateway.core.text import fold
from gateway.db import get_session
from gateway.models import Broadcast
from gateway.outbound import broadcasts
from gateway.people import audit
from gateway.web.api.auth import caller, requires
from gateway.web.api.blueprint import bp
from gateway.web.api.errors import ApiError, invalid
from gateway.web.api.inputs import (
    MAX_FILTER,
    MAX_KEYWORD,
    MAX_TAG,
    MAX_TEXT,
    check_text,
    datetime_field,
    json_body,
    json_type,
    language_field,
    place_field,
    string_field,
)
from gateway.web.api.shapes import created, get_or_404, iso

BROADCAST_FIELDS = ("texts", "place", "language", "tag", "reply_keyword", "urgent", "send_at")


def broadcast_options(data: dict[str, Any]) -> dict[str, Any]:
    """Validated keyword arguments for `broadcasts.create`."""
    default = services().settings.default_language
    texts = data.get("texts")
    if not isinstance(texts, dict):
        if texts is None:
            raise invalid("texts", f"is required: an object of language -> text, e.g. {{\"{default}\": \"...\"}}")
        raise invalid("texts", f"expected an object of language -> text, got {json_type(texts)}")
    clean: dict[str, str] = {}
    for language, text in texts.items():
        field = f"texts.{check_text('texts', language)}"
        language_field(field, language)
        if not isinstance(text, str):
            raise invalid(field, f"expected a string, got {json_type(text)}")
        text = check_text(field, text).strip()
        if len(text) > MAX_TEXT:
            raise invalid(field, f"is longer than {MAX_TEXT} characters")
        if text:
            clean[language.lower()] = text
    if default not in clean:
        raise invalid(f"texts.{default}", f"a text in the default language '{default}' is required")
    keyword = string_field(data, "reply_keyword", max_length=MAX_KEYWORD)
    if keyword is not None:
        folded = fold(keyword)
        if not folded or " " in folded:
            raise invalid("reply_keyword", "must be one word of letters or digits, e.g. YES")
    urgent = data.get("urgent", False)
    if not isinstance(urgent, bool):
        raise invalid("urgent", f"expected true or false, got {json_type(urgent)}")
    send_at = None if data.get("send_at") is None else datetime_field("send_at", data["send_at"])
    tag = string_field(data, "tag", max_length=MAX_TAG)
    return {"texts": clean, "default_language": default,
            "place": place_field("place", string_field(data, "place", max_length=MAX_FILTER)),
            "language": language_field("language", string_field(data, "language", max_length=8)),
            "tag": tag.lower() if tag else None, "reply_keyword": keyword, "urgent": urgent, "send_at": send_at}


def _create_broadcast(session: Session, options: dict[str, Any]) -> Broadcast:
    try:
        return broadcasts.create(session, **options, created_by=caller().actor[:120])
    except broadcasts.BroadcastError as exc:
        raise ApiError(400, "invalid_field", str(exc)) from None


def broadcast_json(session: Session, b: Broadcast) -> dict[str, Any]:
    """A broadcast with its progress (counts by status, pledges)."""
    body = broadcasts.progress(session, b.id)
    body.update({"texts": b.texts, "default_language": b.default_language, "place": b.place,
                 "language": b.language, "tag": b.tag, "urgent": b.urgent, "send_at": iso(b.send_at),
                 "created_by": b.created_by, "created_at": iso(b.created_at),
                 "launched_at": iso(b.launched_at), "cancelled_at": iso(b.cancelled_at)})
    return body


@bp.post("/broadcasts/preview")
@requires("organizer")
def preview_broadcast() -> ResponseReturnValue:
    """What a broadcast would reach and cost; nothing is saved."""
    options = broadcast_options(json_body(BROADCAST_FIELDS))
    session = get_session()
    try:
        b = _create_broadcast(session, options)
        p = broadcasts.preview(session, b, services().settings.sms_prices)
    finally:
        session.rollback()  # a preview creates nothing
    return jsonify(
        audience=p.recipients, total_segments=p.total_segments, estimated_cost=p.estimated_cost,
        segments_by_country=p.by_country,
        texts=[{"language": t.language, "recipients": t.recipients, "encoding": t.encoding,
                "segments": t.segments, "characters": t.characters, "ucs2_characters": list(t.ucs2_chars),
                "gsm7_suggestion": t.suggestion, "gsm7_suggestion_segments": t.suggestion_segments}
               for t in p.texts])


@bp.post("/broadcasts")
@requires("organizer")
def create_broadcast() -> ResponseReturnValue:
    """Save a draft broadcast; nothing is sent until it is launched."""
    options = broadcast_options(json_body(BROADCAST_FIELDS))
    session = get_session()
    b = _create_broadcast(session, options)
    session.commit()
    return created(broadcast_json(session, b), f"/api/v1/broadcasts/{b.id}")


@bp.get("/broadcasts/<int:broadcast_id>")
@requires("viewer")
def get_broadcast(broadcast_id: int) -> ResponseReturnValue:
    """One broadcast and its progress."""
    session = get_session()
    return jsonify(broadcast_json(session, get_or_404(session, Broadcast, broadcast_id, "broadcast")))


@bp.post("/broadcasts/<int:broadcast_id>/launch")
@requires("organizer")
def launch_broadcast(broadcast_id: int) -> ResponseReturnValue:
    """Launch a draft: its outbox rows are committed, then enqueued (202: sending goes on after)."""
    svc = services()
    session = get_session()
    b = get_or_404(session, Broadcast, broadcast_id, "broadcast", lock=True)
    if b.status != "draft":
        raise ApiError(409, "not_a_draft", f"Broadcast {b.id} is already {b.status}; only a draft can be launched.")
    try:
        launched = broadcasts.launch_and_enqueue(
            session, b, channel=svc.provider.name, sender=sender_name(), redis=svc.redis, actor=caller().actor,
            audit_detail=lambda n: {"broadcast_id": b.id, "recipients": n})
    except broadcasts.BroadcastError as exc:
        raise ApiError(409, "not_a_draft", str(exc)) from None
    body = broadcast_json(session, b)
    session.rollback()
    if not launched.enqueued:
        body["warning"] = "The queue could not be reached; the reconciler will send the messages when it is back."
    return jsonify(body), 202, {"Location": f"/api/v1/broadcasts/{b.id}"}


@bp.post("/broadcasts/<int:broadcast_id>/cancel")
@requires("organizer")
def cancel_broadcast(broadcast_id: int) -> ResponseReturnValue:
    """Stop what has not been sent yet (or discard a draft); 409 once it is done or cancelled."""
    session = get_session()
    b = get_or_404(session, Broadcast, broadcast_id, "broadcast", lock=True)
    if b.status in ("done", "cancelled"):
        raise ApiError(409, f"already_{b.status}",
                       f"Broadcast {b.id} is already {b.status}; there is nothing left to cancel.")
    not_sent = broadcasts.cancel(session, b)
    audit.record(session, caller().actor, "broadcast.cancel", broadcast_id=b.id, not_sent=not_sent)
    session.commit()
    body = broadcast_json(session, b)
    body["not_sent"] = not_sent
    return jsonify(body)
