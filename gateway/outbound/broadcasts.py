"""Broadcasts: audience, preview, launch as an outbox (one row per recipient), cancel, progress."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Select, and_, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.core.compose import TextPreview, estimate_cost, preview_text, render
from gateway.core.segments import count_segments, is_gsm7
from gateway.core.text import fold
from gateway.models import Broadcast, Contact, ContactTag, Message, Pledge, utcnow
from gateway.outbound import queues
from gateway.people import audit, contacts

logger = logging.getLogger(__name__)
FINAL = ("sent", "delivered", "undelivered", "failed", "skipped", "cancelled")
STATUSES = ("queued", "sending", *FINAL)
SIMULATOR_TAG = "simulator"  # numbers typed into the console's phone simulator


class BroadcastError(ValueError):
    """A broadcast that cannot be created or launched as asked; the message says why."""


def audience(b: Broadcast) -> Select[Any]:
    """Active, consenting contacts matching the broadcast's place, language and tag."""
    query = contacts.matching(
        select(Contact.id, Contact.language, Contact.name, Contact.place, Contact.country),
        place=b.place, language=b.language, tag=b.tag, status="active").where(Contact.consent_at.is_not(None))
    if b.tag != SIMULATOR_TAG:  # a number tried in the simulator never gets a real alert
        query = query.where(~exists().where(ContactTag.contact_id == Contact.id,
                                            ContactTag.tag == SIMULATOR_TAG))
    return query


def create(session: Session, texts: dict[str, str], *, default_language: str = "en",
           place: str | None = None, language: str | None = None, tag: str | None = None,
           reply_keyword: str | None = None, urgent: bool = False, send_at: datetime | None = None,
           created_by: str | None = None) -> Broadcast:
    """A draft broadcast; texts per language, the default language's text required."""
    texts = {lang: t.strip() for lang, t in texts.items() if t and t.strip()}
    if default_language not in texts:
        raise BroadcastError(f"a text in the default language '{default_language}' is required")
    keyword = fold(reply_keyword).upper() if reply_keyword else None
    if keyword and " " in keyword:
        raise BroadcastError("the reply keyword must be one word, e.g. YES")
    b = Broadcast(texts=texts, default_language=default_language, place=place or None,
                  language=language or None, tag=(tag or "").lower() or None, reply_keyword=keyword,
                  urgent=urgent, send_at=send_at, created_by=created_by, status="draft")
    session.add(b)
    session.flush()
    return b


def text_for(b: Broadcast, language: str | None) -> str:
    """The broadcast's text in a language, else in its default language."""
    return b.texts.get(language or "") or b.texts[b.default_language]


@dataclass
class Preview:
    """What a launch would send and cost."""

    recipients: int
    texts: list[TextPreview]
    total_segments: int
    estimated_cost: float
    by_country: dict[str, int] = field(default_factory=dict)


def _worst_values(values: set[str]) -> list[str]:
    """The values that can make a text longest: the longest GSM-7 one and the longest other one."""
    gsm = [v for v in values if is_gsm7(v)]
    other = [v for v in values if not is_gsm7(v)]
    return [max(group, key=len) for group in (gsm, other) if group] or [""]


def preview(session: Session, b: Broadcast, prices: dict[str, float]) -> Preview:
    """Audience size, per-language encoding and segments (after merge fields), cost."""
    sub = audience(b).subquery()
    lang = func.coalesce(sub.c.language, b.default_language)
    per_lang: dict[str, dict[str, Any]] = {}
    for language, country, n in session.execute(select(lang, sub.c.country, func.count())
                                                .group_by(lang, sub.c.country)):
        key = language if language in b.texts else b.default_language
        entry = per_lang.setdefault(key, {"n": 0, "countries": {}, "names": set(), "places": set()})
        entry["n"] += n
        entry["countries"][country] = entry["countries"].get(country, 0) + n
    # The costliest recipient: one accented name ("María") can turn a whole text into UCS-2.
    for language, name, place in session.execute(select(lang, sub.c.name, sub.c.place).distinct()):
        entry = per_lang[language if language in b.texts else b.default_language]
        entry["names"].add(name or "")
        entry["places"].add(place or "")
    texts: list[TextPreview] = []
    segments_by_country: dict[str | None, int] = {}  # None: a number with no known country
    total = 0
    for language, text in b.texts.items():
        entry = per_lang.get(language, {"n": 0, "countries": {}, "names": set(), "places": set()})
        candidates = [preview_text(language, text, entry["n"], name, place)
                      for name in _worst_values(entry["names"]) for place in _worst_values(entry["places"])]
        p = max(candidates, key=lambda c: (c.segments, c.encoding == "UCS-2", c.characters))
        texts.append(p)
        for country, n in entry["countries"].items():
            segments_by_country[country] = segments_by_country.get(country, 0) + n * p.segments
        total += entry["n"] * p.segments
    recipients = sum(e["n"] for e in per_lang.values())
    return Preview(recipients, texts, total, estimate_cost(segments_by_country, prices),
                   {c or "?": n for c, n in segments_by_country.items()})


def launch(session: Session, b: Broadcast, provider: str, sender: str, now: datetime | None = None) -> int:
    """Write one queued outbox row per recipient in the caller's transaction; return the count.

    The caller commits, then enqueues (`launch_and_enqueue` does both): a row exists before its job.
    """
    now = now or utcnow()
    locked = session.scalars(select(Broadcast).where(Broadcast.id == b.id).with_for_update()).one()
    if locked.status != "draft":
        raise BroadcastError(f"broadcast {b.id} is already {locked.status}")
    rows: list[tuple[Any, ...]] = []
    measured: dict[str, Any] = {}  # most recipients share a few bodies: measure each once
    rendered: dict[tuple[str, str | None, str | None], str] = {}
    for contact_id, language, name, place, _country in session.execute(audience(locked)):
        text = text_for(locked, language)
        # Render once per distinct (text, name, place) that the text actually uses.
        key = (text, name if "{name}" in text else None, place if "{place}" in text else None)
        body = rendered.get(key) or rendered.setdefault(key, render(text, name, place))
        info = measured.get(body) or measured.setdefault(body, count_segments(body))
        rows.append((contact_id, body, info.encoding, info.segments))
    _write_outbox(session, locked, rows, provider, sender, now)
    locked.status, locked.launched_at, locked.recipients = ("sending" if rows else "done"), now, len(rows)
    logger.info("broadcast %s launched to %d recipients", locked.id, len(rows))
    return len(rows)


@dataclass(frozen=True)
class Launched:
    """What a launch came to: the rows are committed; `enqueued` False means the queue was away."""

    broadcast_id: int
    recipients: int
    send_at: datetime | None
    enqueued: bool  # False: the rows wait, queued, for the reconciler to enqueue them when it is back


def launch_and_enqueue(session: Session, b: Broadcast, *, channel: str, sender: str, redis: Any,
                       actor: str | None = None,
                       audit_detail: Callable[[int], dict[str, Any]] | None = None) -> Launched:
    """Launch, audit (when `actor` is given), commit, then enqueue the queued rows.

    BroadcastError (not a draft) leaves the transaction to the caller to roll back. An unreachable
    queue is not an error: the rows are committed as queued, and the reconciler enqueues them.
    """
    n = launch(session, b, channel, sender)
    if actor is not None:
        audit.record(session, actor, "broadcast.launch",
                     **(audit_detail(n) if audit_detail else {"id": b.id, "recipients": n}))
    session.commit()  # rows exist before their jobs
    return Launched(b.id, n, b.send_at, enqueue(session, b.id, redis, at=b.send_at))


def enqueue(session: Session, broadcast_id: int, redis: Any, *, at: datetime | None = None) -> bool:
    """Enqueue a launched broadcast's committed queued rows; False when the queue cannot be reached."""
    ids = list(session.scalars(select(Message.id).where(Message.broadcast_id == broadcast_id,
                                                        Message.status == "queued").order_by(Message.id)))
    session.commit()  # end the read: the view goes on in a fresh transaction
    if not ids:
        return True
    try:
        queues.enqueue_ids(redis, ids, at=at)
    except Exception:  # the rows are safe; the reconciler enqueues queued rows that have no job
        logger.exception("broadcast %s: launched, but its send jobs could not be enqueued", broadcast_id)
        return False
    return True


_OUTBOX_COLUMNS = ("direction", "contact_id", "broadcast_id", "channel", "sender", "medium", "body", "status",
                   "encoding", "segments", "attempts", "send_after", "created_at")


def _write_outbox(session: Session, b: Broadcast, rows: list[tuple[Any, ...]], provider: str, sender: str,
                  now: datetime) -> None:
    """One queued row per (contact id, body, encoding, segments), in the session's transaction."""
    full = [("out", contact_id, b.id, provider, sender, "sms", body, "queued", encoding, segments, 0,
             b.send_at, now) for contact_id, body, encoding, segments in rows]
    if not full:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # COPY: 100,000 rows in about a second, where one INSERT per row takes eight.
        import psycopg  # only PostgreSQL gets here

        statement = f"COPY messages ({', '.join(_OUTBOX_COLUMNS)}) FROM STDIN"
        try:
            driver = connection.connection.driver_connection
            assert driver is not None  # a live psycopg connection: the session holds it
            with driver.cursor() as cursor, cursor.copy(statement) as copy:
                for row in full:
                    copy.write_row(row)
        except psycopg.errors.IntegrityError as exc:  # as SQLAlchemy would raise it for an INSERT
            raise IntegrityError(statement, None, exc) from exc
        return
    session.execute(insert(Message), [dict(zip(_OUTBOX_COLUMNS, row, strict=True)) for row in full])


def cancel(session: Session, b: Broadcast, now: datetime | None = None) -> int:
    """Stop what has not been sent yet; return how many messages will not go out."""
    now = now or utcnow()
    result = session.execute(update(Message).where(Message.broadcast_id == b.id, Message.status == "queued")
                             .values(status="cancelled"))
    if b.status in ("draft", "sending"):
        b.status, b.cancelled_at = "cancelled", now
    return cast(CursorResult[Any], result).rowcount or 0


def progress(session: Session, broadcast_id: int) -> dict[str, Any]:
    """Counts by status, pledges in all and by place; JSON-ready."""
    b = session.get(Broadcast, broadcast_id)
    if b is None:
        raise BroadcastError(f"no broadcast {broadcast_id}")
    counts = dict.fromkeys(STATUSES, 0)
    for status, n in session.execute(select(Message.status, func.count()).where(
            Message.broadcast_id == broadcast_id).group_by(Message.status)):
        counts[status] = n
    by_place = {place or "?": n for place, n in session.execute(
        select(Pledge.place, func.count()).where(Pledge.broadcast_id == broadcast_id).group_by(Pledge.place))}
    return {"id": b.id, "status": b.status, "recipients": b.recipients, "counts": counts,
            "pledges": sum(by_place.values()), "pledges_by_place": by_place,
            "reply_keyword": b.reply_keyword}


def finish_if_done(session: Session, broadcast_ids: set[int]) -> None:
    """Mark broadcasts done once none of their messages is queued or sending."""
    for bid in broadcast_ids:
        pending = session.scalar(select(func.count()).where(
            Message.broadcast_id == bid, Message.status.in_(("queued", "sending"))))
        if not pending:
            session.execute(update(Broadcast).where(Broadcast.id == bid, Broadcast.status == "sending")
                            .values(status="done"))


# The window opens when the alert left (claimed for sending), not when it was launched: quiet hours or
# a send time may hold it for a night. Built once: the inbound path reads it per text (receive.py says why).
_PLEDGEABLE = (select(Broadcast.reply_keyword, Broadcast.id, Message.claimed_at, Broadcast.pledge_window_hours)
               .join(Message, and_(Message.broadcast_id == Broadcast.id, Message.contact_id == bindparam("contact_id")))
               .where(Broadcast.reply_keyword.is_not(None), Message.status.in_(("sending", "sent", "delivered")))
               .order_by(Message.claimed_at))


def open_pledges(session: Session, contact_id: int, now: datetime) -> dict[str, int]:
    """Reply keyword -> broadcast id, for alerts this contact got whose pledge window is open."""
    rows = session.execute(_PLEDGEABLE, {"contact_id": contact_id}).all()
    return {fold(k): bid for k, bid, launched, hours in rows
            if launched and now - launched <= timedelta(hours=hours)}
