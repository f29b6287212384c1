"""Officials and reports for the case tests, written straight to the database."""
from __future__ import annotations

import secrets
from datetime import datetime

from flask import Flask

from gateway.models import Report, utcnow
from gateway.people import officials
from tests.helpers import svc

OFFICIALS_CSV = """number,name,role,language,places,services,level
+265888000001,Grace Phiri,District Health Officer,en,Zomba,clinic,1
+265888000002,John Banda,District Commissioner,en,Zomba,clinic;water,2
+265888000003,Ana Lopez,Jefa de Salud,es,Choluteca,clinic,1
+265888000004,Mercy Tembo,Mkulu wa Zaumoyo,ny,Machinga,clinic,1
"""


def import_officials(app: Flask, text: str = OFFICIALS_CSV) -> tuple[int, list[str]]:
    s = svc(app)
    with s.sessions() as session, session.begin():
        return officials.import_csv(session, text, default_country="MW", gazetteers=s.flows.gazetteers.values(),
                                    languages=s.flows.languages)


def add_report(app: Flask, *, place: str = "Zomba", service: str = "clinic", delivered: str = "no",
               when: datetime | None = None, contact_id: int | None = None) -> int:
    with svc(app).sessions() as session, session.begin():
        r = Report(id=secrets.randbelow(2**31 - 2) + 1, ref=secrets.token_hex(3).upper(), service=service,
                   place=place, country="MW", delivered=delivered, anonymous=contact_id is None,
                   contact_id=contact_id, language="en", created_at=when or utcnow())
        session.add(r)
        session.flush()
        return r.id
