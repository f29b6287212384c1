"""Console: broadcasts (action alerts): list, compose, preview, test, launch, progress, cancel.

The compose form's values and checks are in broadcast_form.py; launching is one domain operation,
`broadcasts.launch_and_enqueue`, which the API and the CLI call too.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select

from gateway import services
from gateway.channels import sender_name
from gateway.core.compose import render
from gateway.core.phones import mask_number
from gateway.db import get_session
from gateway.limits import limiter
from gateway.models import Broadcast, Contact, Message, Pledge
from gateway.outbound import broadcasts, oneoff
from gateway.people import accounts, audit
from gateway.web.console import broadcast_form as form
from gateway.web.console import i18n, role_required
from gateway.web.console.broadcast_form import LANGUAGES, MAX_MEASURE, MAX_TEXT
from gateway.web.console.localtime import console_zone, local
from gateway.web.paging import page_number, paginate

bp = Blueprint("broadcasts", __name__, template_folder="templates")
logger = logging.getLogger(__name__)

PER_PAGE = 50
CONFIRM = "yes"
TEST_SENDS = "5/hour;20/day"  # per account: a stolen session cannot run up a bill through tests
# Plain words for each outbox status, in the order a message moves through them.
STATUS_LABELS = (
    ("queued", _l("Waiting to be sent")),
    ("sending", _l("Being sent now")),
    ("sent", _l("Sent (no delivery report yet)")),
    ("delivered", _l("Delivered to the phone")),
    ("undelivered", _l("Not delivered (phone off or out of reach)")),
    ("failed", _l("Failed (the SMS provider refused it)")),
    ("skipped", _l("Skipped (supporter stopped or number unusable)")),
    ("cancelled", _l("Cancelled")),
)


# --------------------------------------------------------------------------- helpers


def _quiet_hours() -> str | None:
    """QUIET_HOURS as shown ('21:00-07:00'), or None when they are off."""
    quiet = services().settings.quiet_hours
    return f"{quiet[0]:%H:%M}-{quiet[1]:%H:%M}" if quiet else None


def _get(broadcast_id: int, *, lock: bool = False) -> Broadcast:
    query = select(Broadcast).where(Broadcast.id == broadcast_id)
    if lock:
        query = query.with_for_update()
    b = get_session().scalars(query).first()
    if b is None:
        abort(404)
    return b


def _audience_words(b: Broadcast) -> str:
    parts = [_("in %(place)s", place=b.place) if b.place else _("in every place"),
             _("who speak %(language)s", language=form.language_name(b.language)) if b.language
             else _("in every language"),
             _("tagged “%(tag)s”", tag=b.tag) if b.tag else _("with any tag")]
    return _("Supporters %(who)s", who=", ".join(parts))


def _can_organize() -> bool:
    return accounts.can(current_user, "organizer")


# --------------------------------------------------------------------------- list


@bp.get("/broadcasts")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """Every broadcast, newest first, with its status and counts."""
    s = get_session()
    listing = paginate(s, select(Broadcast).order_by(Broadcast.id.desc()), number=page_number(), size=PER_PAGE,
                       clamp=False)
    items = listing.items
    ids = [b.id for b in items]
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    pledges: dict[int, int] = {}
    if ids:
        for bid, status, n in s.execute(select(Message.broadcast_id, Message.status, func.count()).where(
                Message.broadcast_id.in_(ids)).group_by(Message.broadcast_id, Message.status)):
            counts[bid][status] = n
        pledges = dict(s.execute(select(Pledge.broadcast_id, func.count()).where(
            Pledge.broadcast_id.in_(ids)).group_by(Pledge.broadcast_id)).tuples().all())
    rows = []
    for b in items:
        c = counts[b.id]
        rows.append({
            "b": b, "text": broadcasts.text_for(b, b.default_language),
            "sent": c.get("sent", 0) + c.get("delivered", 0) + c.get("undelivered", 0),
            "delivered": c.get("delivered", 0),
            "failed": c.get("failed", 0) + c.get("undelivered", 0),
            "waiting": c.get("queued", 0) + c.get("sending", 0),
            "pledges": pledges.get(b.id, 0),
        })
    return render_template("broadcasts_index.html", rows=rows, page=listing.number,
                           more=listing.number < listing.pages, can_organize=_can_organize(),
                           audience_words=_audience_words)


# --------------------------------------------------------------------------- compose


def _render_compose(values: dict[str, Any], errors: list[str], status: int = 200) -> ResponseReturnValue:
    s = get_session()
    measures = {lang: form.measure_with_audience(s, text) for lang, text in values["texts"].items()}
    recipients = form.count_audience(s, values["place"], values["language"], values["tag"])
    return render_template(
        "broadcasts_new.html", values=values, errors=errors, measures=measures, recipients=recipients,
        languages=form.languages(), language_names=LANGUAGES,
        default_language=services().settings.default_language, place_groups=form.place_groups(),
        tags=form.tags(s), zone=console_zone()[1], max_text=MAX_TEXT), status


@bp.get("/broadcasts/new")
@role_required("organizer")
def new() -> ResponseReturnValue:
    """The compose form; ?copy=<id> starts from an earlier broadcast."""
    values = form.blank_values()
    copy_id = request.args.get("copy", type=int)
    if copy_id:
        original = get_session().get(Broadcast, copy_id)
        if original is not None:
            values = form.values_from_broadcast(original)
    return _render_compose(values, [])


@bp.post("/broadcasts/new")
@role_required("organizer")
def create() -> ResponseReturnValue:
    """Save a draft and show its preview; nothing is sent yet."""
    values = form.values_from_form(request.form)
    errors, send_at = form.validate(values)
    if errors:
        return _render_compose(values, errors, 400)
    s = get_session()
    try:
        b = broadcasts.create(s, values["texts"], default_language=services().settings.default_language,
                              place=values["place"] or None, language=values["language"] or None,
                              tag=values["tag"] or None, reply_keyword=values["reply_keyword"] or None,
                              urgent=values["urgent"], send_at=send_at, created_by=current_user.email)
    except broadcasts.BroadcastError as exc:
        s.rollback()
        return _render_compose(values, [str(exc)[:1].upper() + str(exc)[1:] + "."], 400)
    s.commit()
    return redirect(url_for(".show", broadcast_id=b.id))


@bp.post("/broadcasts/measure")
@role_required("organizer")
def measure() -> ResponseReturnValue:
    """JSON {text} -> characters, encoding, segments, the characters forcing UCS-2, a GSM-7 suggestion."""
    data = request.get_json(silent=True)
    text = data.get("text", "") if isinstance(data, dict) else None
    if not isinstance(text, str):
        return jsonify(error='send JSON like {"text": "..."}'), 400
    if len(text) > MAX_MEASURE:
        return jsonify(error=f"the text is longer than {MAX_MEASURE} characters"), 400
    return jsonify(form.measure_with_audience(get_session(), text))


@bp.post("/broadcasts/audience")
@role_required("organizer")
def audience() -> ResponseReturnValue:
    """JSON {place, language, tag} -> {recipients}: supporters who would get it now."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return jsonify(error='send JSON like {"place": "", "language": "", "tag": ""}'), 400
    fields = {k: data.get(k) or "" for k in ("place", "language", "tag")}
    if not all(isinstance(v, str) and len(v) <= 80 for v in fields.values()):
        return jsonify(error="place, language and tag must be short texts"), 400
    return jsonify(recipients=form.count_audience(get_session(), fields["place"], fields["language"], fields["tag"]))


# --------------------------------------------------------------------------- one broadcast


def _show_context(b: Broadcast) -> dict[str, Any]:
    s = get_session()
    ctx: dict[str, Any] = {
        "b": b, "can_organize": _can_organize(), "audience_words": _audience_words(b),
        "language_names": LANGUAGES, "status_labels": STATUS_LABELS, "local": local,
        "texts": sorted(b.texts.items(), key=lambda kv: (kv[0] != b.default_language, kv[0])),
        "preview": None, "progress": None, "launch_error": None, "cancel_error": None,
        "test_targets": [(n, mask_number(n)) for n in test_targets(current_user)], "quiet_hours": _quiet_hours(),
    }
    if b.status == "draft":
        ctx["preview"] = broadcasts.preview(s, b, services().settings.sms_prices)
    else:
        p = broadcasts.progress(s, b.id)
        counts = p["counts"]
        p["handled"] = p["recipients"] - counts.get("queued", 0) - counts.get("sending", 0)
        ctx["progress"] = p
    return ctx


@bp.get("/broadcasts/<int:broadcast_id>")
@role_required("viewer")
def show(broadcast_id: int) -> ResponseReturnValue:
    """A draft's preview (audience, segments, cost; test and launch), or a launched broadcast's progress."""
    return render_template("broadcasts_show.html", **_show_context(_get(broadcast_id)))


@bp.get("/broadcasts/<int:broadcast_id>/progress.json")
@role_required("viewer")
def progress_json(broadcast_id: int) -> ResponseReturnValue:
    """broadcasts.progress as JSON, polled by progress.js."""
    try:
        p = broadcasts.progress(get_session(), broadcast_id)
    except broadcasts.BroadcastError:
        abort(404)
    response = jsonify(p)
    response.headers["Cache-Control"] = "no-store"
    return response


def _name_for_test(contact: Contact | None, email: str) -> str:
    """The organizer's name for {name}: their supporter record's, else from their email."""
    if contact is not None and contact.name:
        return contact.name
    local = email.split("@", 1)[0]
    return " ".join(part.capitalize() for part in local.replace("_", ".").split(".") if part) or local


def test_targets(user: Any) -> list[str]:
    """Where this user may send a test: their own verified phone, then the admins' allow-list."""
    targets = [user.phone] if user.phone and user.phone_verified_at else []
    allowed = services().settings.test_send_numbers
    return targets + [n for n in allowed if n not in targets]


def _user_key() -> str:
    return f"user:{current_user.get_id()}"


@bp.post("/broadcasts/<int:broadcast_id>/test")
@role_required("organizer")
@limiter.limit(TEST_SENDS, key_func=_user_key)
def test_send(broadcast_id: int) -> ResponseReturnValue:
    """Queue the default-language text, merged with the organizer's name, for their own verified phone."""
    s = get_session()
    b = _get(broadcast_id)
    email = current_user.email
    back = redirect(url_for(".show", broadcast_id=broadcast_id))
    targets = test_targets(current_user)
    raw = (request.form.get("to") or "").strip()
    try:
        if not targets:
            raise oneoff.Refused(_("test messages go only to your own phone: add and confirm it on the "
                                   "Account page first"))
        number = oneoff.mobile_number(raw, services().settings.default_country) if raw else targets[0]
        if number not in targets:
            raise oneoff.Refused(_("test messages go only to your own confirmed phone or to a number "
                                   "an admin allowed"))
        contact = oneoff.recipient(s, number)
    except oneoff.Refused as exc:
        s.rollback()
        # Flash messages live in the session cookie (signed, not encrypted): never a number in them.
        flash(_("Test message not sent: %(why)s.", why=exc), "error")
        return back
    body = render(b.texts[b.default_language], _name_for_test(contact, email),
                  b.place or contact.place)
    row = oneoff.queue_text(s, contact, body, provider=services().provider.name, sender=sender_name())
    audit.record(s, email, "broadcast.test", id=b.id, message_id=row.id, number_digest=oneoff.digest(s, number),
                 segments=row.segments)
    s.commit()
    # The row exists before its job; the worker claims it, so it is sent once and paced.
    if oneoff.enqueue(services().redis, [row.id]):
        flash(_("Test message on its way to %(phone)s: “%(text)s”", phone=mask_number(number), text=body), "ok")
    else:
        flash(_("The test message is saved but the queue could not be reached; it goes out when it is back."),
              "error")
    return back


@bp.post("/broadcasts/<int:broadcast_id>/launch")
@role_required("organizer")
def launch(broadcast_id: int) -> ResponseReturnValue:
    """Write the outbox rows and commit, then enqueue them; only with the confirmation ticked."""
    s = get_session()
    b = _get(broadcast_id, lock=True)
    if b.status != "draft":
        flash(_("This broadcast is already %(status)s; it was not launched again.", status=i18n.word(b.status)),
              "error")
        return redirect(url_for(".show", broadcast_id=broadcast_id))
    error = None
    if request.form.get("confirm") != CONFIRM:
        error = _("Not launched: tick “I have checked the text and the audience” first.")
    elif form.count_audience(s, b.place, b.language, b.tag) == 0:
        error = _("Not launched: no supporter matches this audience, so there is nobody to send to.")
    if error:
        ctx = _show_context(b)
        ctx["launch_error"] = error
        return render_template("broadcasts_show.html", **ctx), 400
    try:
        launched = broadcasts.launch_and_enqueue(
            s, b, channel=services().provider.name, sender=sender_name(), redis=services().redis,
            actor=current_user.email,
            audit_detail=lambda n: {"id": b.id, "recipients": n, **({"send_at": b.send_at.isoformat()}
                                                                     if b.send_at else {})})
    except broadcasts.BroadcastError as exc:
        s.rollback()
        flash(_("Not launched: %(why)s.", why=exc), "error")
        return redirect(url_for(".show", broadcast_id=broadcast_id))
    if not launched.enqueued:
        flash(_("The messages are saved but the queue could not be reached; they will be picked up "
                "automatically when it is back."), "error")
    n = launched.recipients
    if b.send_at:
        flash(_("Scheduled: %(n)s supporter(s) will get it at %(when)s.", n=n, when=local(b.send_at)), "ok")
    else:
        flash(_("Launched: sending to %(n)s supporter(s).", n=n), "ok")
    return redirect(url_for(".show", broadcast_id=b.id))


@bp.post("/broadcasts/<int:broadcast_id>/cancel")
@role_required("organizer")
def cancel(broadcast_id: int) -> ResponseReturnValue:
    """Stop the messages not yet sent (or discard a draft); only with the confirmation ticked."""
    s = get_session()
    b = _get(broadcast_id, lock=True)
    if b.status not in ("draft", "sending"):
        flash(_("This broadcast is already %(status)s; there is nothing left to cancel.",
                status=i18n.word(b.status)), "error")
        return redirect(url_for(".show", broadcast_id=broadcast_id))
    if request.form.get("confirm") != CONFIRM:
        ctx = _show_context(b)
        ctx["cancel_error"] = _("Not cancelled: tick the box to confirm that you want to stop it.")
        return render_template("broadcasts_show.html", **ctx), 400
    was_draft = b.status == "draft"
    n = broadcasts.cancel(s, b)
    audit.record(s, current_user.email, "broadcast.cancel", id=b.id, cancelled=n)
    s.commit()
    if was_draft:
        flash(_("Draft discarded; nothing was sent."), "ok")
    else:
        flash(_("Cancelled: %(n)s message(s) will not be sent. Messages already being sent may still arrive.", n=n),
              "ok")
    return redirect(url_for(".show", broadcast_id=broadcast_id))
