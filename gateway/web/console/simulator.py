"""Console: a phone in the page that texts the gateway through the real inbound path (as `sms simulate`)."""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from gateway import services
from gateway.channels.base import InboundSMS
from gateway.core.phones import InvalidNumber, normalise_number
from gateway.db import get_session
from gateway.inbound import receive
from gateway.models import Contact, Message, Report
from gateway.outbound.broadcasts import SIMULATOR_TAG
from gateway.people import audit, contacts
from gateway.web.console import role_required
from gateway.web.console.localtime import console_zone

bp = Blueprint("simulator", __name__, template_folder="templates")

DEFAULT_NUMBER = "+265990000001"
PROVIDER = "console"
SHOWN = 200          # the newest messages shown on the screen
MAX_TEXT = receive.MAX_BODY
SEEN_ON_PHONE = ("sent", "delivered", "inline")


class SimulatorError(ValueError):
    """A text the simulator will not send; the message says why."""


def _normalise(raw: str) -> str:
    try:
        return normalise_number(raw, services().settings.default_country).value
    except InvalidNumber as exc:
        raise SimulatorError(_("Test number: %(why)s.", why=exc)) from None


def _refusal(s: Any, number: str) -> str | None:
    """Why the simulator leaves this number alone, or None: it only touches numbers it created.

    A supporter who was imported, added through the API or texted for real must not be stopped,
    renamed or left out of alerts (the simulator tag) by a test, nor their messages read here.
    """
    contact = contacts.find(s, number)
    if contact is None:
        return None  # new: the simulator creates it, tagged
    real = s.scalar(select(Message.id).where(Message.contact_id == contact.id,
                                             Message.channel != PROVIDER).limit(1)) is not None
    if real or SIMULATOR_TAG not in contact.tags:
        return _("This number belongs to a real supporter. Use a test number (e.g. %(number)s) "
                 "so their subscription is not changed.", number=DEFAULT_NUMBER)
    return None


def _simulator_sessions() -> sessionmaker[Session]:
    """The app's sessions, with every report written through them marked as a simulator report."""
    made = current_app.extensions.get("simulator_sessions")
    if made is None:
        base = services().sessions
        made = sessionmaker(class_=base.class_, **base.kw)

        @event.listens_for(made, "before_flush")
        def _mark(session: Session, _context: Any, _instances: Any) -> None:
            for obj in session.new:
                if isinstance(obj, Report):
                    obj.source = "simulator"  # a test report can always be told from evidence

        current_app.extensions["simulator_sessions"] = made
    return made


def _clock(at: datetime | None, zone: ZoneInfo) -> str:
    """A stored (naive UTC) time as the phone shows it: HH:MM in the console's time zone."""
    return f"{at.replace(tzinfo=UTC).astimezone(zone):%H:%M}" if at else ""


def _conversation(s: Any, number: str) -> list[dict[str, Any]]:
    """The contact's messages, both directions, oldest first, as the phone shows them."""
    contact = contacts.find(s, number)
    if contact is None:
        return []
    zone = ZoneInfo(console_zone()[0])
    rows = list(s.scalars(select(Message).where(Message.contact_id == contact.id)
                          .order_by(Message.id.desc()).limit(SHOWN)))
    out = []
    for m in reversed(rows):
        if m.body is None:
            continue  # words removed (an anonymous report, retention): nothing hints they were there
        note = None
        if m.direction == "out" and m.status not in SEEN_ON_PHONE:
            note = m.status  # queued, cancelled, failed ...: not (yet) on a real phone
        out.append({"id": m.id, "mine": m.direction == "in", "body": m.body,
                    "at": _clock(m.created_at, zone), "note": note,
                    "broadcast": m.broadcast_id})
    return out


def _simulate(number: str, text: str) -> list[str]:
    """Exactly `flask sms simulate`: store, handle in order, read the replies, mark them sent."""
    svc = services()
    # Not through the spool: a kept text would be replayed later without the simulator's marking.
    received = replace(svc.inbound, sessions=_simulator_sessions()).store_and_handle(
        InboundSMS(PROVIDER, None, number, None, text))
    if received.contact_id is None:
        raise SimulatorError(_("%(number)s is not a phone number; the text was kept, not handled.", number=number))
    with svc.sessions() as session, session.begin():
        # A simulator phone is a test, not a supporter: real alerts leave it out (see audience()).
        contact = session.get(Contact, received.contact_id)
        if contact is not None:
            contacts.add_tags(session, contact, [SIMULATOR_TAG])
    return list(received.texts)


def _page(raw_number: str, text: str = "", error: str | None = None, status: int = 200) -> ResponseReturnValue:
    number = None
    try:
        number = _normalise(raw_number)
    except SimulatorError as exc:
        error = error or str(exc)
    if number and not error and (refused := _refusal(get_session(), number)):
        error, status = refused, 403
    messages = _conversation(get_session(), number) if number and status < 400 else []
    return render_template("simulator_index.html", raw_number=raw_number, number=number or "",
                           messages=messages, text=text, error=error, max_text=MAX_TEXT), status


@bp.get("/simulator")
@role_required("organizer")
def index() -> ResponseReturnValue:
    """The phone, showing the conversation of the test number (?from=); only a simulator number's."""
    return _page(request.args.get("from") or DEFAULT_NUMBER)


@bp.post("/simulator/send")
@role_required("organizer")
def send() -> ResponseReturnValue:
    """Text the gateway from a test number: JSON {from, text} -> {from, replies, conversation}; a form re-renders."""
    as_json = request.is_json
    data = request.get_json(silent=True) if as_json else request.form
    if data is None or (not isinstance(data, dict) and not hasattr(data, "get")):
        return jsonify(error='send JSON like {"from": "+265990000001", "text": "JOIN"}'), 400
    raw_number = str(data.get("from") or "").strip()
    text = data.get("text") or ""
    try:
        if not isinstance(text, str) or not text.strip():
            raise SimulatorError(_("Type a message first."))
        if len(text) > MAX_TEXT:
            raise SimulatorError(_("A text can have at most %(most)s characters.", most=MAX_TEXT))
        number = _normalise(raw_number)
        s = get_session()
        refused = _refusal(s, number)
        if refused:
            raise SimulatorError(refused)
        s.commit()  # end this request's transaction: the inbound path opens its own
        replies = _simulate(number, text)
    except SimulatorError as exc:
        if as_json:
            return jsonify(error=str(exc)), 400
        return _page(raw_number or DEFAULT_NUMBER, text if isinstance(text, str) else "", str(exc), 400)
    s = get_session()
    # Who drove which test number, and when: the keyed digest, not the number or the words.
    audit.record(s, current_user.email, "simulator.send", number_digest=contacts.vault(s).digest(number),
                 characters=len(text), replies=len(replies))
    s.commit()
    if as_json:
        return jsonify({"from": number, "sent": text, "replies": replies,
                        "conversation": _conversation(get_session(), number)})
    return redirect(url_for(".index", _anchor="sim-last", **{"from": number}))  # type: ignore[arg-type]  # "from" is a keyword
