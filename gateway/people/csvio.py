"""CSV in and out: contacts import (bad rows reported by line, good rows kept) and exports."""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TextIO

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from gateway.core.phones import InvalidNumber, normalise_number
from gateway.core.places import Gazetteer, match_place
from gateway.models import Check, Contact, Report
from gateway.people import contacts

CONTACT_COLUMNS = ("number", "name", "language", "place", "tags")
REPORT_COLUMNS = ("ref", "date", "country", "place", "service", "service_detail", "delivered",
                  "details", "anonymous", "language", "source",  # source: "simulator" for a test
                  # an answer to a delivery check: which check and its due date (the brief's figures recount
                  # from these: docs/evidence.md); the label corroboration gave the report
                  "check_id", "due_on", "verification")
MAX_NAME = 120  # Contact.name's column size
_TAG_SPLIT = re.compile(r"[;,|]")


class Sheet:
    """An uploaded CSV: its header's column names (lower-cased) and its data lines, each named by number."""

    def __init__(self, text: str) -> None:
        self._reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
        header = next(self._reader, None)
        self.names = [h.strip().lower() for h in header] if header else []

    def rows(self, errors: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
        """(line number, {column: value}) for each line that is not blank; a line with more values
        than columns is reported in `errors` instead."""
        end = self._reader.line_num
        for values in self._reader:
            line, end = end + 1, self._reader.line_num  # a quoted field may span lines: name the first
            if not any(v.strip() for v in values):
                continue
            if len(values) > len(self.names):
                errors.append(f"line {line}: {len(values)} values for {len(self.names)} columns")
                continue
            yield line, {n: (values[i].strip() if i < len(values) else "") for i, n in enumerate(self.names)}


@dataclass(frozen=True)
class ContactRow:
    line: int
    number: str
    name: str | None
    language: str | None
    place: str | None
    tags: tuple[str, ...]


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    kept_stopped: int = 0  # updated, but an organizer's import never ends a supporter's opt-out
    errors: list[str] = field(default_factory=list)


def parse_contacts(text: str, default_country: str, gazetteers: Iterable[Gazetteer],
                   languages: Sequence[str]) -> tuple[list[ContactRow], list[str]]:
    """Pure: the usable rows and one error per unusable line ('line 4: ...')."""
    gazetteers = list(gazetteers)
    sheet = Sheet(text)
    names = sheet.names
    if not names:
        return [], ["line 1: the file is empty; expected a header: " + ", ".join(CONTACT_COLUMNS)]
    # "status" is accepted so an export imports again, but ignored: only a supporter ends an opt-out.
    unknown = [h for h in names if h and h not in (*CONTACT_COLUMNS, "status")]
    if "number" not in names or unknown:
        return [], [f"line 1: expected the columns {', '.join(CONTACT_COLUMNS)} (number is required)"
                    + (f"; unknown: {', '.join(unknown)}" if unknown else "")]
    rows: list[ContactRow] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for line, cell in sheet.rows(errors):
        try:
            number = normalise_number(cell["number"], default_country)
        except InvalidNumber as exc:
            errors.append(f"line {line}: number {cell['number']!r}: {exc}")
            continue
        if len(cell.get("name", "")) > MAX_NAME:
            errors.append(f"line {line}: name is longer than {MAX_NAME} characters")
            continue
        language = cell.get("language", "").lower() or None
        if language and language not in languages:
            errors.append(f"line {line}: language {language!r}: expected one of {', '.join(languages)}")
            continue
        place = None
        if cell.get("place"):
            found = match_place(cell["place"], gazetteers, prefer_country=default_country)
            if found is None:
                errors.append(f"line {line}: place {cell['place']!r}: not in the gazetteers in flows/places/")
                continue
            place = found.name
        if number.value in seen:
            errors.append(f"line {line}: number repeats line {seen[number.value]}; this line was skipped")
            continue
        seen[number.value] = line
        tags = tuple(t.strip().lower() for t in _TAG_SPLIT.split(cell.get("tags", "")) if t.strip())
        rows.append(ContactRow(line, number.value, cell.get("name") or None, language, place, tags))
    return rows, errors


def apply_contacts(session: Session, rows: Sequence[ContactRow], now: datetime) -> ImportSummary:
    """Create or update contacts; never touches a contact's status."""
    summary = ImportSummary()
    for row in rows:
        contact = contacts.find(session, row.number)
        if contact is None:
            contact = contacts.new_contact(session, row.number)
            contact.consent_at = now  # the organizer imports people who agreed to hear from them
            session.add(contact)
            summary.created += 1
        else:
            summary.updated += 1
            summary.kept_stopped += contact.status == "stopped"
        contact.name = row.name or contact.name
        contact.language = row.language or contact.language
        contact.place = row.place or contact.place
        contacts.add_tags(session, contact, list(row.tags))
    return summary


# A cell starting with one of these runs as a formula in Excel, LibreOffice or Google Sheets
# (the full-width forms too, which some of them fold to ASCII).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# A phone number as the gateway writes it (E.164, or masked for viewers): no formula can hide in it,
# and it must stay importable as it is.
_NUMBER = re.compile(r"\+[0-9]+\**[0-9]*")


def _safe(value: str | None) -> str:
    """Text must not run as a spreadsheet formula: a leading quote makes it plain text."""
    value = value or ""
    if value[:1] in _FORMULA_START and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer whose every text cell goes through _safe: no column can carry a formula."""

    def __init__(self, out: Any) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable[Any]) -> Any:
        """Write one row, each text cell made safe."""
        return self._writer.writerow([_safe(c) if isinstance(c, str) else c for c in row])


def writer(out: Any) -> SafeWriter:
    """A CSV writer for exports: names, tags, places and report texts come from imports, the API
    and supporters' texts, and any of them could otherwise run as a formula when opened."""
    return SafeWriter(out)


def export_contacts(session: Session, out: TextIO) -> int:
    """Write every contact as CSV; returns the count."""
    writer = SafeWriter(out)
    writer.writerow([*CONTACT_COLUMNS, "status"])
    count = 0
    for c in session.scalars(select(Contact).order_by(Contact.id)):
        writer.writerow([contacts.number_of(c), _safe(c.name), c.language or "", c.place or "",
                         ";".join(c.tags), c.status])
        count += 1
    return count


def report_row(r: Report, due_on: date | None) -> list[str]:
    """One report as a CSV row in REPORT_COLUMNS' order (never a phone number or a contact)."""
    return [r.ref, r.created_at.date().isoformat(), r.country or "", r.place or "", r.service,
            _safe(r.service_detail), r.delivered or "", _safe(r.details), "yes" if r.anonymous else "no",
            r.language or "", r.source or "", str(r.check_id) if r.check_id else "",
            due_on.isoformat() if due_on else "", r.verification or ""]


def reports_with_due_dates(query: Select[Any]) -> Select[Any]:
    """A select of reports widened to (Report, the due date of the check it answers, if any)."""
    return query.add_columns(Check.due_on).outerjoin(Check, Check.id == Report.check_id)


def export_reports(session: Session, out: TextIO) -> int:
    """Write every report as CSV, without any phone number; returns the count."""
    writer = SafeWriter(out)
    writer.writerow(REPORT_COLUMNS)
    count = 0
    # By day, then by reference: the order within a day must not tell which report came first.
    for r, due_on in session.execute(reports_with_due_dates(select(Report))
                                     .order_by(func.date(Report.created_at), Report.ref)):
        writer.writerow(report_row(r, due_on))
        count += 1
    return count
