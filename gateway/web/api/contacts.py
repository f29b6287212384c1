"""/api/v1/contacts: list (an audited export), add, change."""
from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.core.phones import mask_number
from gateway.db import get_session
from gateway.limits import limiter
from gateway.models import Contact, utcnow
from gateway.people import audit, contacts
from gateway.web.api.auth import caller, requires
from gateway.web.api.blueprint import bp
from gateway.web.api.errors import ApiError, invalid
from gateway.web.api.inputs import (
    MAX_FILTER,
    MAX_NAME,
    STATUSES,
    json_body,
    language_field,
    number_field,
    pagination,
    place_field,
    query_args,
    string_field,
    tags_field,
)
from gateway.web.api.shapes import created, get_or_404, iso
from gateway.web.paging import paginate

CONTACT_FIELDS = ("number", "name", "language", "place", "tags")
CONTACT_PATCH_FIELDS = ("name", "language", "place", "tags", "status")

# A masked number hides 5 digits: a viewer who could search freely would unmask one in 10^5 tries.
VIEWER_NUMBER_SEARCHES = "30/hour;100/day"
# Pages of contacts per token: a tool syncing a large list fits; a runaway or stolen token is slowed.
CONTACT_LISTINGS = "600/hour"


def contact_json(c: Contact) -> dict[str, Any]:
    """A contact as JSON; its number is whole for organizers and admins, masked for viewers."""
    number = contacts.number_of(c)
    if caller().role == "viewer":
        number = mask_number(number)
    return {"id": c.id, "number": number, "name": c.name, "language": c.language,
            "place": c.place, "country": c.country, "tags": c.tags, "status": c.status,
            "created_at": iso(c.created_at)}


def _caller_key() -> str:
    return f"api-user:{caller().id}"


def _not_a_viewer_number_search() -> bool:
    return "number" not in request.args or caller().role != "viewer"


@bp.get("/contacts")
@requires("viewer")
@limiter.limit(lambda: CONTACT_LISTINGS, key_func=_caller_key)
@limiter.limit(VIEWER_NUMBER_SEARCHES, key_func=_caller_key, exempt_when=_not_a_viewer_number_search)
def list_contacts() -> ResponseReturnValue:
    """Contacts, filtered and paged; every listing is an export and is audited."""
    args = query_args(("place", "language", "tag", "status", "number", "page", "per_page"))
    page, per_page = pagination(args)
    place = place_field("place", args["place"]) if "place" in args else None
    language = language_field("language", args["language"]) if "language" in args else None
    if "status" in args and args["status"] not in STATUSES:
        raise invalid("status", f"expected one of {', '.join(STATUSES)}")
    session = get_session()
    query = contacts.matching(select(Contact), place=place, language=language, tag=args.get("tag"),
                              status=args.get("status"))
    detail: dict[str, Any] = {"via": "api"}
    if "number" in args:  # the API's own filter: one exact number (the console searches names too)
        number = number_field("number", args["number"])
        found = contacts.find(session, number)
        query = query.where(Contact.id == (found.id if found else None))
        # The keyed digest names the number for an investigator holding the key, and nobody else.
        detail["number_digest"] = contacts.vault(session).digest(number)
    filters = {k: args[k] for k in ("place", "language", "tag", "status") if k in args}
    if filters:
        detail["filters"] = filters
    listing = paginate(session, query.order_by(Contact.id), number=page, size=per_page, clamp=False)
    data = [contact_json(c) for c in listing.items]
    audit.record(session, caller().actor, "export.contacts", count=len(listing.items), page=page, **detail)
    session.commit()
    return jsonify(data=data, pagination=listing.meta())


@bp.post("/contacts")
@requires("organizer")
def create_contact() -> ResponseReturnValue:
    """Add a supporter who agreed to hear from the organization; 409 if the number is known."""
    data = json_body(CONTACT_FIELDS)
    raw_number = string_field(data, "number", max_length=40, required=True)
    assert raw_number is not None
    number = number_field("number", raw_number)
    name = string_field(data, "name", max_length=MAX_NAME)
    language = language_field("language", string_field(data, "language", max_length=8))
    place = place_field("place", string_field(data, "place", max_length=MAX_FILTER))
    tags = tags_field("tags", data.get("tags"))
    session = get_session()
    existing = contacts.find(session, number)
    if existing is not None:
        raise ApiError(409, "contact_exists",
                       f"A contact with this number already exists (id {existing.id}); "
                       f"change it with PATCH /api/v1/contacts/{existing.id}.")
    contact = contacts.new_contact(session, number)
    contact.consent_at = utcnow()  # like an import: organizers add people who agreed to hear from them
    contact.name, contact.language, contact.place = name, language, place
    session.add(contact)
    contacts.add_tags(session, contact, tags)
    try:
        session.flush()
        session.commit()
    except IntegrityError:  # created by someone else between our check and insert
        session.rollback()
        raise ApiError(409, "contact_exists", "A contact with this number already exists.") from None
    return created(contact_json(contact), f"/api/v1/contacts/{contact.id}")


@bp.patch("/contacts/<int:contact_id>")
@requires("organizer")
def update_contact(contact_id: int) -> ResponseReturnValue:
    """Change a contact's name, language, place, tags or status; never undo a STOP."""
    data = json_body(CONTACT_PATCH_FIELDS)
    if not data:
        raise ApiError(400, "invalid_body",
                       f"The body names nothing to change; send one or more of {', '.join(CONTACT_PATCH_FIELDS)}.")
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = string_field(data, "name", max_length=MAX_NAME)
    if "language" in data:
        changes["language"] = language_field("language", string_field(data, "language", max_length=8))
    if "place" in data:
        changes["place"] = place_field("place", string_field(data, "place", max_length=MAX_FILTER))
    tags = tags_field("tags", data["tags"]) if "tags" in data else None
    status = string_field(data, "status", max_length=16, nullable=False) if "status" in data else None
    if "status" in data and status not in STATUSES:
        raise invalid("status", f"expected one of {', '.join(STATUSES)}")
    session = get_session()
    contact = get_or_404(session, Contact, contact_id, "contact", lock=True)
    if status == "active" and contact.status == "stopped":
        audit.record(session, caller().actor, "contact.status.refused", contact_id=contact.id, old="stopped",
                     new="active")
        session.commit()  # the attempt to override an opt-out is kept even though it is refused
        raise ApiError(409, "contact_stopped",
                       "This supporter opted out (STOP), so the API cannot make them active again; "
                       "only the supporter can, by texting START.", field="status")
    for key, value in changes.items():
        setattr(contact, key, value)
    if status is not None and status != contact.status:
        audit.record(session, caller().actor, "contact.status", contact_id=contact.id, old=contact.status, new=status)
        contact.status = status
        if status == "stopped":
            contact.stopped_at = utcnow()
    if tags is not None:
        contact.tag_rows = [row for row in contact.tag_rows if row.tag in tags]
        contacts.add_tags(session, contact, tags)
    session.commit()
    return jsonify(contact_json(contact))
