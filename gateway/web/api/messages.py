"""/api/v1/messages/set-aside: inbound texts the gateway could not handle after its retries."""
from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from gateway.core.phones import mask_number
from gateway.db import get_session
from gateway.inbound.receive import SET_ASIDE
from gateway.models import Contact, Message
from gateway.people import contacts
from gateway.web.api.auth import caller, requires
from gateway.web.api.blueprint import bp
from gateway.web.api.inputs import pagination, query_args
from gateway.web.api.shapes import iso
from gateway.web.paging import paginate


def set_aside_json(m: Message, c: Contact | None, full: bool) -> dict[str, Any]:
    """An inbound text the gateway could not handle; its sender's number masked unless `full`."""
    number = contacts.number_of(c) if c is not None else None
    return {"id": m.id, "contact_id": m.contact_id,
            "number": (number if full else mask_number(number)) if number else None,
            "body": m.body, "error": m.error, "attempts": m.attempts, "channel": m.medium, "provider": m.channel,
            "received_at": iso(m.created_at), "set_aside_at": iso(m.handled_at)}


@bp.get("/messages/set-aside")
@requires("viewer")
def list_set_aside() -> ResponseReturnValue:
    """Inbound texts set aside after failed handling, newest first; viewers get masked numbers."""
    page, per_page = pagination(query_args(("page", "per_page")))
    session = get_session()
    query = select(Message).where(Message.direction == "in", Message.status == SET_ASIDE)
    listing = paginate(session, query.order_by(Message.id.desc()), number=page, size=per_page, clamp=False)
    items = listing.items
    ids = {m.contact_id for m in items if m.contact_id is not None}
    senders = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(ids)))} if ids else {}
    full = caller().role in ("organizer", "admin")
    return jsonify(data=[set_aside_json(m, senders.get(m.contact_id or 0), full) for m in items],
                   pagination=listing.meta())
