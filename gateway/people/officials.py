"""The directory of decision makers: CSV import (bad lines reported by number, good lines kept).

An official's phone is a Contact tagged `official`, made through gateway/people/contacts.py (the
number sealed there) with no consent: no broadcast's audience ever includes it.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.phones import InvalidNumber, normalise_number
from gateway.core.places import Gazetteer, match_place
from gateway.models import Official
from gateway.people import contacts
from gateway.people.csvio import Sheet

COLUMNS = ("number", "name", "role", "language", "places", "services", "level")
OFFICIAL_TAG = "official"
_SPLIT = re.compile(r"[;|]")


def import_csv(session: Session, text: str, *, default_country: str, gazetteers: Iterable[Gazetteer],
               languages: Sequence[str]) -> tuple[int, list[str]]:
    """Create or update officials from CSV text; (how many went in, one error per bad line)."""
    gazetteers = list(gazetteers)
    sheet = Sheet(text)
    names = sheet.names
    if not names:
        return 0, ["line 1: the file is empty; expected a header: " + ",".join(COLUMNS)]
    missing = [c for c in ("number", "name", "role") if c not in names]
    unknown = [h for h in names if h and h not in COLUMNS]
    if missing or unknown:
        return 0, [f"line 1: expected the columns {','.join(COLUMNS)}"
                   + (f"; missing: {', '.join(missing)}" if missing else "")
                   + (f"; unknown: {', '.join(unknown)}" if unknown else "")]
    done = 0
    errors: list[str] = []
    seen: dict[str, int] = {}
    for line, cell in sheet.rows(errors):
        problem, official = _row(cell, default_country, gazetteers, languages)
        if problem:
            errors.append(f"line {line}: {problem}")
            continue
        assert official is not None
        number = str(official.pop("number"))
        if number in seen:
            errors.append(f"line {line}: number repeats line {seen[number]}; this line was skipped")
            continue
        seen[number] = line
        _save(session, number, official)
        done += 1
    session.flush()
    return done, errors


def _row(cell: dict[str, str], default_country: str, gazetteers: list[Gazetteer],
         languages: Sequence[str]) -> tuple[str | None, dict[str, object] | None]:
    try:
        number = normalise_number(cell["number"], default_country).value
    except InvalidNumber as exc:
        return f"number {cell['number']!r}: {exc}", None
    name, role = cell.get("name", ""), cell.get("role", "")
    if not name or len(name) > 120:
        return "name is required (at most 120 characters)", None
    if not role or len(role) > 120:
        return "role is required (at most 120 characters), e.g. District Health Officer", None
    language = (cell.get("language") or "en").lower()
    if language not in languages:
        return f"language {language!r}: expected one of {', '.join(languages)}", None
    places = []
    for raw in (p.strip() for p in _SPLIT.split(cell.get("places", "")) if p.strip()):
        found = match_place(raw, gazetteers, prefer_country=default_country)
        if found is None:
            return f"place {raw!r}: not in the gazetteers in flows/places/", None
        places.append(found.name)
    services = [s.strip().lower()[:40] for s in _SPLIT.split(cell.get("services", "")) if s.strip()]
    level_text = cell.get("level") or "1"
    if not level_text.isdigit() or int(level_text) < 1:
        return f"level {level_text!r}: expected the rung as a whole number, 1 or more", None
    return None, {"number": number, "name": name, "role": role, "language": language, "places": places,
                  "services": services, "level": int(level_text)}


def _save(session: Session, number: str, values: dict[str, object]) -> Official:
    contact = contacts.find(session, number)
    if contact is None:
        contact = contacts.new_contact(session, number, status="active", consent_at=None,
                                       language=str(values["language"]))
        session.add(contact)
        session.flush()
    contacts.add_tags(session, contact, [OFFICIAL_TAG])
    official = session.scalars(select(Official).where(Official.contact_id == contact.id)).first()
    if official is None:
        official = Official(contact_id=contact.id)
        session.add(official)
    for key, value in values.items():
        setattr(official, key, value)
    official.active = True
    session.flush()
    return official


def official_of_contact(session: Session, contact_id: int) -> Official | None:
    return session.scalars(select(Official).where(Official.contact_id == contact_id)).first()
