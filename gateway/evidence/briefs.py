"""The brief, asked for by place and month or by case: inputs checked, figures read, the export audited.

The console, the API and `flask brief` all come through here; bad input is BadInput with a sentence.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.core.brief import BadInput, parse_month
from gateway.core.places import Gazetteer
from gateway.evidence import figures
from gateway.evidence.words import LANGUAGES
from gateway.models import Case
from gateway.people import audit

FORMATS = ("pdf", "html", "json")


def check_language(language: str | None) -> str:
    """The brief's language: en (the default) or es."""
    language = (language or "en").strip().lower()
    if language not in LANGUAGES:
        raise BadInput(f"lang {language[:10]!r}: the brief is written in {' or '.join(LANGUAGES)}")
    return language


def for_place(session: Session, place: str, month: str, gazetteers: list[Gazetteer], country: str | None,
              now: datetime | None = None) -> figures.Brief:
    """The brief of a place for a month ('Zomba', '2026-11')."""
    first = parse_month(month)
    name = figures.known_place(session, place, gazetteers, country)
    return figures.make_brief(figures.place_figures(session, name, first, now), now)


def find_case(session: Session, ref: str) -> Case:
    """A case by its reference, as typed (any case); BadInput if there is none."""
    ref = (ref or "").strip().upper()
    case = session.scalar(select(Case).where(func.upper(Case.ref) == ref[:12])) if ref else None
    if case is None:
        raise BadInput(f"case {ref[:20]!r}: there is no case with this reference")
    return case


def for_case(session: Session, ref: str, now: datetime | None = None) -> figures.Brief:
    """The brief of one case, by its reference."""
    return figures.make_brief(figures.case_figures(session, find_case(session, ref), now), now)


def record_export(session: Session, actor: str, brief: figures.Brief, fmt: str, language: str, via: str) -> None:
    """Each brief handed out is on the audit log, like every export: what, in which form, and its fingerprint."""
    f = brief.figures
    what = {"place": f.place, "month": f.month} if isinstance(f, figures.PlaceFigures) else {"case": f.case.ref}
    audit.record(session, actor, "export.brief", via=via, format=fmt, lang=language, fingerprint=brief.fingerprint,
                 **what)
