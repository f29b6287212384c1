"""Console: the inbox: texts the flows could not handle, for a person to read and answer.

Viewers read (numbers masked); organizers reply and mark messages handled.
"""
from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import BooleanField, TextAreaField
from wtforms.validators import DataRequired, Length

from gateway import services
from gateway.core.phones import mask_number
from gateway.db import get_session
from gateway.inbound.receive import MAX_BODY
from gateway.models import Contact, Conversation, Message
from gateway.outbound import oneoff
from gateway.people import audit, contacts
from gateway.web.console import role_required
from gateway.web.console.supporters import full_numbers, shown_number
from gateway.web.paging import paginate

bp = Blueprint("inbox", __name__, template_folder="templates")


class ReplyForm(FlaskForm):
    body = TextAreaField(_l("Reply"), validators=[DataRequired(_l("Write a reply first.")), Length(max=MAX_BODY)])
    handled = BooleanField(_l("and mark handled"), default=True)


class HandledForm(FlaskForm):
    """Only the CSRF token."""


def _back(message_id: int | None = None) -> Response:
    page = request.form.get("page", "")
    url = url_for("inbox.index", page=page) if page.isdigit() and page != "1" else url_for("inbox.index")
    return redirect(url + (f"#m{message_id}" if message_id else ""))


def _open_message(message_id: int, *, to_answer: bool = True) -> Message:
    """An inbound message that was put in the inbox, or 404.

    A reply reaches only the contact of such a message: never the sender of a flow step, and
    never anyone through an anonymous report's conversation (its reporter must stay unreachable).
    """
    s = get_session()
    message = s.get(Message, message_id)
    if message is None or message.direction != "in" or message.inbox_status is None:
        abort(404)
    if to_answer and message.body is None:
        abort(404)  # its words were removed (an anonymous report, retention): nothing to answer
    if to_answer and message.conversation_id is not None:
        conversation = s.get(Conversation, message.conversation_id)
        if conversation is None or conversation.redacted:
            abort(404)
    return message


def _who(contact: Contact) -> str:
    """A contact as a flash message names them: flashes live in the cookie, so never a whole number."""
    return contact.name or mask_number(contacts.number_of(contact))


@bp.get("/inbox")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """Open inbound messages, newest first, with the replies already sent to each."""
    s = get_session()
    page = paginate(s, select(Message, Contact).outerjoin(Contact, Contact.id == Message.contact_id)
                    .where(Message.direction == "in", Message.inbox_status == "open")
                    .order_by(Message.id.desc()), scalars=False)
    ids = [m.id for m, _c in page.items]
    replies: dict[int, list[Message]] = {}
    if ids:
        for r in s.scalars(select(Message).where(Message.reply_to_id.in_(ids)).order_by(Message.id)):
            replies.setdefault(r.reply_to_id or 0, []).append(r)  # never 0: the query asks for replies
    numbers = {c.id: shown_number(c) for _m, c in page.items if c is not None}
    return render_template("inbox_index.html", page=page, replies=replies, numbers=numbers,
                           masked=not full_numbers())


@bp.post("/inbox/<int:message_id>/reply")
@role_required("organizer")
def reply(message_id: int) -> ResponseReturnValue:
    """Store the reply, claim it (so the outbox never sends it too), send it, record the outcome."""
    form = ReplyForm()
    message = _open_message(message_id)
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(_("Not sent: %(why)s", why=error), "error")
        return _back(message_id)
    s = get_session()
    contact = s.get(Contact, message.contact_id) if message.contact_id else None
    if contact is None:
        flash(_("Not sent: this message came from a number the gateway cannot reply to."), "error")
        return _back(message_id)
    if contact.status != "active":
        flash(_("Not sent: %(who)s has texted STOP. The gateway sends them nothing until they text START or JOIN "
                "themselves.", who=_who(contact)) if contact.status == "stopped" else
              _("Not sent: %(who)s has been blocked. The gateway sends them nothing until they text START or JOIN "
                "themselves.", who=_who(contact)), "error")
        return _back(message_id)
    svc = services()
    body = (form.body.data or "").strip()
    # The reply leaves by the channel the supporter wrote to (a phone, Africa's Talking, Twilio).
    provider = (svc.channels.provider(message.channel) if svc.channels is not None else None) or svc.provider
    out = oneoff.queue_text(s, contact, body, provider=provider.name, sender=None, reply_to=message)
    if form.handled.data:
        message.inbox_status = "handled"
    audit.record(s, current_user.email, "inbox.reply", message_id=message.id, reply_id=out.id,
                 contact_id=contact.id, segments=out.segments, handled=bool(form.handled.data))
    s.commit()
    # Sent now, through the outbox (so it is claimed, paced, and its errors read as every send's
    # are): the organizer sees at once whether it left.
    sent = oneoff.send_now(services().outbox(), out.id)
    if sent.status == "queued":
        flash(_("The SMS provider asked us to slow down: the reply is queued and goes out shortly."), "error")
    elif sent.status == "sending":
        flash(_("The SMS provider did not confirm the reply. The gateway checks with it and sends "
                "the reply again only if it did not arrive."), "error")
    elif sent.status != "sent":
        message.inbox_status = "open"
        s.commit()
        if sent.status == "skipped":
            flash(_("Not sent: %(who)s can no longer be texted.", who=_who(contact)), "error")
        else:
            # The provider's text may hold the number (Africa's Talking does): show its code only.
            flash(_("Not sent: the SMS provider refused it (error %(code)s).", code=sent.error_code or _("unknown")),
                  "error")
    else:
        flash(_("Reply sent to %(who)s (%(n)s SMS).", who=_who(contact), n=out.segments), "ok")
        return _back(None if form.handled.data else message_id)
    return _back(message_id)


@bp.post("/inbox/<int:message_id>/handled")
@role_required("organizer")
def handled(message_id: int) -> ResponseReturnValue:
    """Take a message off the open list."""
    form = HandledForm()
    message = _open_message(message_id, to_answer=False)
    if form.validate_on_submit() and message.inbox_status == "open":
        s = get_session()
        message.inbox_status = "handled"
        audit.record(s, current_user.email, "inbox.handled", message_id=message.id)
        s.commit()
        flash(_("Marked handled."), "ok")
    return _back()
