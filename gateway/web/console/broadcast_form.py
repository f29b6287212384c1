"""The console's broadcast compose form: its values, their validation, and the live counters' numbers."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway import services
from gateway.core.compose import preview_text
from gateway.core.segments import gsm7_replace
from gateway.models import Broadcast, Contact, ContactTag, utcnow
from gateway.outbound import broadcasts
from gateway.web.console import localtime

# Names only (flows/system.yaml lists the languages), in the reader's language.
LANGUAGES = {"en": _l("English"), "ny": _l("Chichewa"), "es": _l("Spanish")}
MAX_TEXT = 1600          # characters a broadcast text may have (10+ segments is already a lot)
MAX_MEASURE = 5000       # the live counter refuses more than this


def languages() -> list[str]:
    """The languages a broadcast can be written in, the default one first."""
    default = services().settings.default_language
    return [default] + [lang for lang in services().flows.languages if lang != default]


def language_name(code: str | None) -> str:
    """A language's name for people ('ny' -> 'Chichewa'); an unknown code as it is."""
    return str(LANGUAGES.get(code or "", code or ""))


def place_groups() -> list[tuple[str, list[str]]]:
    """(label, place names) per gazetteer, for the place select."""
    groups = []
    for g in sorted(services().flows.gazetteers.values(), key=lambda g: g.name):
        label = f"{g.name.replace('_', ' ').title()} ({g.country})"
        groups.append((label, sorted(p.name for p in g.places)))
    return groups


def _place_names() -> set[str]:
    return {name for _, names in place_groups() for name in names}


def tags(session: Session) -> list[str]:
    """Tags in use, for the tag field's suggestions."""
    return list(session.scalars(select(ContactTag.tag).distinct().order_by(ContactTag.tag).limit(200)))


# --------------------------------------------------------------------------- values


def blank_values() -> dict[str, Any]:
    """An empty form: a text box per language."""
    return {"texts": dict.fromkeys(languages(), ""), "place": "", "language": "", "tag": "",
            "reply_keyword": "", "urgent": False, "send_at": ""}


def values_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """The posted form's values, trimmed."""
    return {"texts": {lang: form.get(f"text_{lang}", "") for lang in languages()},
            "place": form.get("place", "").strip(), "language": form.get("language", "").strip(),
            "tag": form.get("tag", "").strip(), "reply_keyword": form.get("reply_keyword", "").strip(),
            "urgent": form.get("urgent") in ("1", "on", "yes", "true"),
            "send_at": form.get("send_at", "").strip()}


def values_from_broadcast(b: Broadcast) -> dict[str, Any]:
    """A form filled from an earlier broadcast (?copy=); a send time already past is left out."""
    values = blank_values()
    values["texts"].update({lang: text for lang, text in b.texts.items() if lang in values["texts"]})
    local = localtime.local_input(b.send_at) if b.send_at and b.send_at > utcnow() else ""
    values.update(place=b.place or "", language=b.language or "", tag=b.tag or "",
                  reply_keyword=b.reply_keyword or "", urgent=bool(b.urgent), send_at=local)
    return values


def _parse_send_at(raw: str, errors: list[str]) -> datetime | None:
    if not raw:
        return None
    try:
        when = localtime.to_utc(raw)
    except ValueError:
        errors.append(_("Send time: pick a date and a time, e.g. 2025-03-01 14:30 (or leave it empty to send now)."))
        return None
    if when <= utcnow():
        errors.append(_("Send time: that time has already passed. Leave it empty to send now."))
        return None
    return when


def validate(values: dict[str, Any]) -> tuple[list[str], datetime | None]:
    """The form's errors, in words for the organizer, and its send time as naive UTC."""
    errors: list[str] = []
    default = services().settings.default_language
    if not values["texts"].get(default, "").strip():
        errors.append(_("Write the alert in %(language)s: every supporter without a text "
                        "in their own language gets that one.", language=language_name(default)))
    for lang, text in values["texts"].items():
        if len(text.strip()) > MAX_TEXT:
            errors.append(_("The %(language)s text is %(n)s characters long; the most is %(most)s.",
                            language=language_name(lang), n=len(text.strip()), most=MAX_TEXT))
    if values["place"] and values["place"] not in _place_names():
        errors.append(_("Place: choose a place from the list."))
    if values["language"] and values["language"] not in languages():
        errors.append(_("Language: choose a language from the list."))
    if len(values["tag"]) > 40:
        errors.append(_("Tag: at most 40 characters."))
    keyword = values["reply_keyword"]
    if keyword and (len(keyword) > 20 or len(keyword.split()) != 1):
        errors.append(_("Reply keyword: one short word, e.g. YES."))
    send_at = _parse_send_at(values["send_at"], errors)
    return errors, send_at


# --------------------------------------------------------------------------- live counters


def _char_label(char: str) -> str:
    """How to show a character that forces UCS-2 (invisible ones by code)."""
    if char.isspace() or not char.isprintable():
        return f"U+{ord(char):04X}"
    return char


def _longest_merge(session: Session) -> tuple[int, int]:
    """Longest name and place among supporters who can get alerts (worst case for {name}, {place})."""
    row = session.execute(select(func.max(func.length(Contact.name)), func.max(func.length(Contact.place))).where(
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


def measure_with_audience(session: Session, text: str) -> dict[str, Any]:
    """measure_text, with {name} and {place} as long as the longest in the audience."""
    name_len, place_len = _longest_merge(session) if "{" in text else (0, 0)
    return measure_text(text, name_len, place_len)


def count_audience(session: Session, place: str | None, language: str | None, tag: str | None) -> int:
    """How many supporters a broadcast with these filters would reach now."""
    probe = Broadcast(place=place or None, language=language or None,
                      tag=(tag or "").strip().lower() or None)
    return int(session.scalar(select(func.count()).select_from(broadcasts.audience(probe).subquery())) or 0)
