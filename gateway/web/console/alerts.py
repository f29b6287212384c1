"""Console: broadcasts (action alerts) — list, compose with live counters, preview, test, launch, progress, cancel."""
from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, select

from gateway import services
from gateway.people import accounts
from gateway.people import audit
from gateway.outbound import broadcasts
from gateway.outbound import oneoff
from gateway.outbound import jobs as queue
from gateway.cli_outbound import sender_name
from gateway.core.compose import parse_prices, parse_quiet_hours, preview_text, render
from gateway.db import get_session
from gateway.web.console import role_required
from gateway.models import Broadcast, Contact, ContactTag, Message, Pledge, utcnow
from gateway.limits import limiter
from gateway.core.segments import gsm7_replace
from gateway.core.phones import mask_number

bp = Blueprint("alerts", __name__, template_folder="templates")
logger = logging.getLogger(__name__)

LANGUAGES = {"en": "English", "ny": "Chichewa", "es": "Spanish"}
MAX_TEXT = 1600          # characters a broadcast text may have (10+ segments is already a lot)
MAX_MEASURE = 5000       # the live counter refuses more than this
PER_PAGE = 50
CONFIRM = "yes"
TEST_SENDS = "5/hour;20/day"  # per account: a stolen session cannot run up a bill through tests
# Plain words for each outbox status, in the order a message moves through them.
STATUS_LABELS = (
    ("queued", "Waiting to be sent"),
    ("sending", "Being sent now"),
    ("sent", "Sent (no delivery report yet)"),
    ("delivered", "Delivered to the phone"),
    ("undelivered", "Not delivered (phone off or out of reach)"),
    ("failed", "Failed (the SMS provider refused it)"),
    ("skipped", "Skipped (supporter stopped or number unusable)"),
    ("cancelled", "Cancelled"),
)


# --------------------------------------------------------------------------- helpers


def _languages() -> list[str]:
    """The languages a broadcast can be written in, the default one first."""
    default = current_app.config["DEFAULT_LANGUAGE"]
    return [default] + [lang for lang in LANGUAGES if lang != default]


def _language_name(code: str | None) -> str:
    return LANGUAGES.get(code or "", code or "")


def _place_groups() -> list[tuple[str, list[str]]]:
    """(label, place names) per gazetteer, for the place select."""
    groups = []
    for g in sorted(services().flows.gazetteers.values(), key=lambda g: g.name):
        label = f"{g.name.replace('_', ' ').title()} ({g.country})"
        groups.append((label, sorted(p.name for p in g.places)))
    return groups


def _place_names() -> set[str]:
    return {name for _, names in _place_groups() for name in names}


def console_zone() -> tuple[str, str]:
    """(time zone, label) that console times are typed and shown in: the default country's gazetteer's."""
    country = current_app.config["DEFAULT_COUNTRY"]
    for g in services().flows.gazetteers.values():
        if g.country == country:
            return g.timezone, f"{g.name.replace('_', ' ').title()} time ({g.timezone})"
    return "UTC", "UTC"


def _zone() -> str:
    return console_zone()[0]


def _local(dt: datetime | None) -> str:
    """A naive-UTC time as 'YYYY-MM-DD HH:MM' in the console's time zone, with UTC."""
    if dt is None:
        return ""
    zone = _zone()
    local = dt.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
    if zone == "UTC":
        return f"{local:%Y-%m-%d %H:%M} UTC"
    return f"{local:%Y-%m-%d %H:%M} ({zone}; {dt:%H:%M} UTC)"


def _prices() -> dict[str, float] | None:
    try:
        return parse_prices(current_app.config.get("SMS_PRICES"))
    except ValueError:
        logger.warning("SMS_PRICES is not readable: %r", current_app.config.get("SMS_PRICES"))
        return None


def _quiet_hours() -> str | None:
    """QUIET_HOURS as shown ('21:00-07:00'), or None when they are off."""
    try:
        quiet = parse_quiet_hours(current_app.config.get("QUIET_HOURS"))
    except ValueError:
        return None
    return f"{quiet[0]:%H:%M}-{quiet[1]:%H:%M}" if quiet else None


def _char_label(char: str) -> str:
    """How to show a character that forces UCS-2 (invisible ones by code)."""
    if char.isspace() or not char.isprintable():
        return f"U+{ord(char):04X}"
    return char


def _longest_merge(s: Any) -> tuple[int, int]:
    """Longest name and place among supporters who can get alerts (worst case for {name}, {place})."""
    row = s.execute(select(func.max(func.length(Contact.name)), func.max(func.length(Contact.place))).where(
        Contact.status == "active", Contact.consent_at.is_not(None))).one()
    return int(row[0] or 0), int(row[1] or 0)


def measure_text(text: str, name_len: int = 0, place_len: int = 0) -> dict[str, Any]:
    """The counter's numbers, from compose.preview_text (the same count the preview page and launch use)."""
    p = preview_text("", text, 0, "x" * name_len, "x" * place_len)
    replacements = [[a, b] for a, b in gsm7_replace(text)[1]] if p.suggestion else []
    return {
        "characters": p.characters, "encoding": p.encoding, "segments": p.segments,
        "ucs2_chars": list(p.ucs2_chars), "ucs2_labels": [_char_label(c) for c in p.ucs2_chars],
        "suggestion": p.suggestion, "suggestion_segments": p.suggestion_segments,
        "replacements": replacements,
        "merge_fields": "{name}" in text or "{place}" in text,
        "too_long": len(text.strip()) > MAX_TEXT,
    }


def _measure_with_audience(s: Any, text: str) -> dict[str, Any]:
    name_len, place_len = _longest_merge(s) if "{" in text else (0, 0)
    return measure_text(text, name_len, place_len)


def _count_audience(s: Any, place: str | None, language: str | None, tag: str | None) -> int:
    """How many supporters a broadcast with these filters would reach now."""
    probe = Broadcast(place=place or None, language=language or None,
                      tag=(tag or "").strip().lower() or None)
    return int(s.scalar(select(func.count()).select_from(broadcasts.audience(probe).subquery())) or 0)


def _get(broadcast_id: int, *, lock: bool = False) -> Broadcast:
    query = select(Broadcast).where(Broadcast.id == broadcast_id)
    if lock:
        query = query.with_for_update()
    b = get_session().scalars(query).first()
    if b is None:
        abort(404)
    return b


def _audience_words(b: Broadcast) -> str:
    parts = [f"in {b.place}" if b.place else "in every place",
             f"who speak {_language_name(b.language)}" if b.language else "in every language",
             f"tagged “{b.tag}”" if b.tag else "with any tag"]
    return "Supporters " + ", ".join(parts)


def _can_organize() -> bool:
    return accounts.can(current_user, "organizer")


def _tags(s: Any) -> list[str]:
    return list(s.scalars(select(ContactTag.tag).distinct().order_by(ContactTag.tag).limit(200)))


# --------------------------------------------------------------------------- list


@bp.get("/broadcasts")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """Every broadcast, newest first, with its status and counts."""
    s = get_session()
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    total = s.scalar(select(func.count()).select_from(Broadcast)) or 0
    items = list(s.scalars(select(Broadcast).order_by(Broadcast.id.desc())
                           .offset((page - 1) * PER_PAGE).limit(PER_PAGE)))
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
    return render_template("alerts_index.html", rows=rows, page=page,
                           more=total > page * PER_PAGE, can_organize=_can_organize(),
                           audience_words=_audience_words)


# --------------------------------------------------------------------------- compose


def _blank_values() -> dict[str, Any]:
    return {"texts": {lang: "" for lang in _languages()}, "place": "", "language": "", "tag": "",
            "reply_keyword": "", "urgent": False, "send_at": ""}


def _values_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    return {"texts": {lang: form.get(f"text_{lang}", "") for lang in _languages()},
            "place": form.get("place", "").strip(), "language": form.get("language", "").strip(),
            "tag": form.get("tag", "").strip(), "reply_keyword": form.get("reply_keyword", "").strip(),
            "urgent": form.get("urgent") in ("1", "on", "yes", "true"),
            "send_at": form.get("send_at", "").strip()}


def _values_from_broadcast(b: Broadcast) -> dict[str, Any]:
    values = _blank_values()
    values["texts"].update({lang: text for lang, text in b.texts.items() if lang in values["texts"]})
    local = ""
    if b.send_at and b.send_at > utcnow():
        local = f"{b.send_at.replace(tzinfo=UTC).astimezone(ZoneInfo(_zone())):%Y-%m-%dT%H:%M}"
    values.update(place=b.place or "", language=b.language or "", tag=b.tag or "",
                  reply_keyword=b.reply_keyword or "", urgent=bool(b.urgent), send_at=local)
    return values


def _parse_send_at(raw: str, errors: list[str]) -> datetime | None:
    if not raw:
        return None
    try:
        local = datetime.fromisoformat(raw.replace(" ", "T"))
    except ValueError:
        errors.append("Send time: pick a date and a time, e.g. 2025-03-01 14:30 (or leave it empty to send now).")
        return None
    if local.tzinfo is None:
        local = local.replace(tzinfo=ZoneInfo(_zone()))
    when = local.astimezone(UTC).replace(tzinfo=None)
    if when <= utcnow():
        errors.append("Send time: that time has already passed. Leave it empty to send now.")
        return None
    return when


def _validate(values: dict[str, Any]) -> tuple[list[str], datetime | None]:
    errors: list[str] = []
    default = current_app.config["DEFAULT_LANGUAGE"]
    if not values["texts"].get(default, "").strip():
        errors.append(f"Write the alert in {_language_name(default)}: every supporter without a text "
                      "in their own language gets that one.")
    for lang, text in values["texts"].items():
        if len(text.strip()) > MAX_TEXT:
            errors.append(f"The {_language_name(lang)} text is {len(text.strip())} characters long; "
                          f"the most is {MAX_TEXT}.")
    if values["place"] and values["place"] not in _place_names():
        errors.append("Place: choose a place from the list.")
    if values["language"] and values["language"] not in LANGUAGES:
        errors.append("Language: choose a language from the list.")
    if len(values["tag"]) > 40:
        errors.append("Tag: at most 40 characters.")
    keyword = values["reply_keyword"]
    if keyword and (len(keyword) > 20 or len(keyword.split()) != 1):
        errors.append("Reply keyword: one short word, e.g. YES.")
    send_at = _parse_send_at(values["send_at"], errors)
    return errors, send_at


def _render_compose(values: dict[str, Any], errors: list[str], status: int = 200) -> ResponseReturnValue:
    s = get_session()
    measures = {lang: _measure_with_audience(s, text) for lang, text in values["texts"].items()}
    recipients = _count_audience(s, values["place"], values["language"], values["tag"])
    return render_template(
        "alerts_new.html", values=values, errors=errors, measures=measures, recipients=recipients,
        languages=_languages(), language_names=LANGUAGES, default_language=current_app.config["DEFAULT_LANGUAGE"],
        place_groups=_place_groups(), tags=_tags(s), zone=console_zone()[1], max_text=MAX_TEXT), status


@bp.get("/broadcasts/new")
@role_required("organizer")
def new() -> ResponseReturnValue:
    """The compose form; ?copy=<id> starts from an earlier broadcast."""
    values = _blank_values()
    copy_id = request.args.get("copy", type=int)
    if copy_id:
        original = get_session().get(Broadcast, copy_id)
        if original is not None:
            values = _values_from_broadcast(original)
    return _render_compose(values, [])


@bp.post("/broadcasts/new")
@role_required("organizer")
def create() -> ResponseReturnValue:
    """Save a draft and show its preview; nothing is sent yet."""
    values = _values_from_form(request.form)
    errors, send_at = _validate(values)
    if errors:
        return _render_compose(values, errors, 400)
    s = get_session()
    try:
        b = broadcasts.create(s, values["texts"], default_language=current_app.config["DEFAULT_LANGUAGE"],
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
    return jsonify(_measure_with_audience(get_session(), text))


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
    return jsonify(recipients=_count_audience(get_session(), fields["place"], fields["language"], fields["tag"]))


# --------------------------------------------------------------------------- one broadcast


def _show_context(b: Broadcast) -> dict[str, Any]:
    s = get_session()
    ctx: dict[str, Any] = {
        "b": b, "can_organize": _can_organize(), "audience_words": _audience_words(b),
        "language_names": LANGUAGES, "status_labels": STATUS_LABELS, "local": _local,
        "texts": sorted(b.texts.items(), key=lambda kv: (kv[0] != b.default_language, kv[0])),
        "preview": None, "progress": None, "prices_ok": True, "launch_error": None, "cancel_error": None,
        "test_targets": [(n, mask_number(n)) for n in test_targets(current_user)], "quiet_hours": _quiet_hours(),
    }
    if b.status == "draft":
        prices = _prices()
        ctx["prices_ok"] = prices is not None
        ctx["preview"] = broadcasts.preview(s, b, prices or {})
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
    return render_template("alerts_show.html", **_show_context(_get(broadcast_id)))


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
    allowed = oneoff.parse_numbers(current_app.config.get("TEST_SEND_NUMBERS"), current_app.config["DEFAULT_COUNTRY"])
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
            raise oneoff.Refused("test messages go only to your own phone: add and confirm it on the "
                                 "Account page first")
        number = oneoff.mobile_number(raw, current_app.config["DEFAULT_COUNTRY"]) if raw else targets[0]
        if number not in targets:
            raise oneoff.Refused("test messages go only to your own confirmed phone or to a number "
                                 "an admin allowed")
        contact = oneoff.recipient(s, number)
    except oneoff.Refused as exc:
        s.rollback()
        # Flash messages live in the session cookie (signed, not encrypted): never a number in them.
        flash(f"Test message not sent: {exc}.", "error")
        return back
    body = render(b.texts[b.default_language], _name_for_test(contact, email),
                  b.place or contact.place)
    row = oneoff.queue_text(s, contact, body, provider=services().provider.name, sender=sender_name())
    audit.record(s, email, "broadcast.test", id=b.id, message_id=row.id, number_digest=oneoff.digest(s, number),
                 segments=row.segments)
    s.commit()
    # The row exists before its job; the worker claims it, so it is sent once and paced.
    if oneoff.enqueue(services().redis, [row.id]):
        flash(f"Test message on its way to {mask_number(number)}: “{body}”", "ok")
    else:
        flash("The test message is saved but the queue could not be reached; it goes out when it is back.",
              "error")
    return back


@bp.post("/broadcasts/<int:broadcast_id>/launch")
@role_required("organizer")
def launch(broadcast_id: int) -> ResponseReturnValue:
    """Write the outbox rows and commit, then enqueue them; only with the confirmation ticked."""
    s = get_session()
    b = _get(broadcast_id, lock=True)
    if b.status != "draft":
        flash(f"This broadcast is already {b.status}; it was not launched again.", "error")
        return redirect(url_for(".show", broadcast_id=broadcast_id))
    error = None
    if request.form.get("confirm") != CONFIRM:
        error = "Not launched: tick “I have checked the text and the audience” first."
    elif _count_audience(s, b.place, b.language, b.tag) == 0:
        error = "Not launched: no supporter matches this audience, so there is nobody to send to."
    if error:
        ctx = _show_context(b)
        ctx["launch_error"] = error
        return render_template("alerts_show.html", **ctx), 400
    email = current_user.email
    try:
        n = broadcasts.launch(s, b, services().provider.name, sender_name())
    except broadcasts.BroadcastError as exc:
        s.rollback()
        flash(f"Not launched: {exc}.", "error")
        return redirect(url_for(".show", broadcast_id=broadcast_id))
    detail: dict[str, Any] = {"id": b.id, "recipients": n}
    if b.send_at:
        detail["send_at"] = b.send_at.isoformat()
    audit.record(s, email, "broadcast.launch", **detail)
    s.commit()
    # Rows exist before their jobs: enqueue only after the commit.
    ids = list(s.scalars(select(Message.id).where(Message.broadcast_id == b.id, Message.status == "queued")
                         .order_by(Message.id)))
    s.commit()
    try:
        queue.enqueue_ids(services().redis, ids, at=b.send_at)
    except Exception:  # the rows are safe; the reconciler enqueues queued rows that have no job
        logger.exception("broadcast %s: enqueue failed", b.id)
        flash("The messages are saved but the queue could not be reached; they will be picked up "
              "automatically when it is back.", "error")
    if b.send_at:
        flash(f"Scheduled: {n} supporter(s) will get it at {_local(b.send_at)}.", "ok")
    else:
        flash(f"Launched: sending to {n} supporter(s).", "ok")
    return redirect(url_for(".show", broadcast_id=b.id))


@bp.post("/broadcasts/<int:broadcast_id>/cancel")
@role_required("organizer")
def cancel(broadcast_id: int) -> ResponseReturnValue:
    """Stop the messages not yet sent (or discard a draft); only with the confirmation ticked."""
    s = get_session()
    b = _get(broadcast_id, lock=True)
    if b.status not in ("draft", "sending"):
        flash(f"This broadcast is already {b.status}; there is nothing left to cancel.", "error")
        return redirect(url_for(".show", broadcast_id=broadcast_id))
    if request.form.get("confirm") != CONFIRM:
        ctx = _show_context(b)
        ctx["cancel_error"] = "Not cancelled: tick the box to confirm that you want to stop it."
        return render_template("alerts_show.html", **ctx), 400
    was_draft = b.status == "draft"
    n = broadcasts.cancel(s, b)
    audit.record(s, current_user.email, "broadcast.cancel", id=b.id, cancelled=n)
    s.commit()
    if was_draft:
        flash("Draft discarded; nothing was sent.", "ok")
    else:
        flash(f"Cancelled: {n} message(s) will not be sent. Messages already being sent may still arrive.", "ok")
    return redirect(url_for(".show", broadcast_id=broadcast_id))
