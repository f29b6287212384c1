"""Console reports: filters, counts by place and service, the weekly trend, CSV export, anonymity."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime

from sqlalchemy import select

from gateway.people.contacts import number_is
from gateway.models import AuditEvent, Contact, Report
from gateway.core.phones import mask_number
from tests.conftest import Auth
from tests.transcript import Phone

A = "+265991234567"
B = "+265881234567"
H = "+50499123456"


def reports(app) -> None:  # type: ignore[no-untyped-def]
    """Four reports over ISO weeks 2025-W03, W04 and W06 (W05 has none); H's is anonymous."""
    week3 = Phone(app, now=datetime(2025, 1, 14, 10, 0))  # Tuesday of 2025-W03
    week3.send(A, "REPORT NAME CLINIC ZOMBA NO nurse absent")  # NAME: not anonymous
    week3.send(B, "REPORT NAME WATER ZOMBA YES borehole fixed")
    week4 = Phone(app, now=datetime(2025, 1, 22, 9, 0))  # 2025-W04
    week4.send(H, "DENUNCIA agua Cortes no el pozo esta seco")  # anonymous
    week6 = Phone(app, now=datetime(2025, 2, 5, 16, 0))  # 2025-W06
    week6.send(A, "REPORT NAME CLINIC MANGOCHI PARTLY one nurse")
    with app.extensions["gateway"].sessions() as s:
        assert len(s.scalars(select(Report)).all()) == 4


def html(client, url: str) -> str:  # type: ignore[no-untyped-def]
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def refs(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Report refs by their details, to look for in pages."""
    with app.extensions["gateway"].sessions() as s:
        return {r.details: r.ref for r in s.scalars(select(Report))}


def shown(app, client, url: str) -> set[str]:  # type: ignore[no-untyped-def]
    """The details of the reports listed on a page."""
    page = html(client, url)
    table = page[page.index('<table class="reports">'):]
    return {details for details in refs(app) if details in table}


def test_filters(app, client, auth) -> None:
    reports(app)
    auth.login("viewer")
    assert shown(app, client, "/reports") == {"nurse absent", "borehole fixed", "el pozo esta seco", "one nurse"}
    assert shown(app, client, "/reports?place=Zomba") == {"nurse absent", "borehole fixed"}
    assert shown(app, client, "/reports?service=water") == {"borehole fixed", "el pozo esta seco"}
    assert shown(app, client, "/reports?delivered=partly") == {"one nurse"}
    assert shown(app, client, "/reports?delivered=no&service=clinic") == {"nurse absent"}
    assert shown(app, client, "/reports?from=2025-01-20&to=2025-01-31") == {"el pozo esta seco"}
    assert shown(app, client, "/reports?to=2025-01-14") == {"nurse absent", "borehole fixed"}  # the whole day
    page = html(client, "/reports?from=31/01/2025")
    assert "is not a date like" in page and len(shown(app, client, "/reports?from=31/01/2025")) == 4
    assert "<b>4</b> reports:" in html(client, "/reports")
    assert "<b>1</b> report matches this filter" in html(client, "/reports?place=Mangochi")


def test_counts_by_place_and_service(app, client, auth) -> None:
    reports(app)
    auth.login("viewer")
    page = html(client, "/reports")
    # Bars: the longest is the full width; a bar of 1 next to a top of 2 is half.
    assert re.search(r'width="250\.0" height="22" rx="2"><title>Zomba: 2</title>', page)
    assert re.search(r'width="125\.0" height="22" rx="2"><title>Mangochi: 1</title>', page)
    assert "<title>clinic: 2</title>" in page and "<title>water: 2</title>" in page
    counts = page[page.index('id="counts"'):page.index("</table>", page.index('id="counts"'))]
    row = re.search(r'<th scope="row">Zomba</th>(.*?)</tr>', counts, re.S)
    assert row and re.findall(r'<td class="n">(?:<b>)?(\d*)', row.group(1)) == ["1", "1", "2"]  # clinic, water, total
    # The counts follow the filter.
    filtered = html(client, "/reports?service=clinic")
    assert "<title>Zomba: 1</title>" in filtered and "water" not in filtered.split('id="counts"')[1].split("</table>")[0]


def test_weekly_trend_by_iso_week(app, client, auth) -> None:
    reports(app)
    auth.login("viewer")
    page = html(client, "/reports")
    weeks = page[page.index('id="weeks"'):]
    rows = re.findall(r'<th scope="row">(\d{4}-W\d\d)</th><td>[^<]*</td><td class="n">(\d+)</td>', weeks)
    assert rows == [("2025-W06", "1"), ("2025-W05", "0"), ("2025-W04", "1"), ("2025-W03", "2")]
    assert "2025-W03 (from 13 Jan 2025): 2" in page  # the SVG bar's tooltip
    assert "2025-W03 to 2025-W06" in page


def test_anonymous_reports_never_show_a_number(app) -> None:
    reports(app)
    with app.extensions["gateway"].sessions() as s:
        # None: the anonymous report was all H ever sent, so H is not even a contact any more.
        h_id = s.scalars(select(Contact.id).where(number_is(s, H))).first()
        a_id = s.scalars(select(Contact.id).where(number_is(s, A))).one()
    forms_of_h = (H, H.lstrip("+"), mask_number(H), "99123456")
    urls = ["/reports", "/reports?service=water", "/reports?place=Cort%C3%A9s", "/reports?delivered=no",
            "/reports?from=2025-01-22&to=2025-01-22", "/reports?page=2",
            "/reports/export", "/reports/export?service=water"]
    for role in ("viewer", "organizer", "admin"):
        client = app.test_client()
        Auth(app, client).login(role)
        for url in urls:
            text = html(client, url)
            assert "el pozo esta seco" in text, (role, url)  # the anonymous report is there...
            assert not any(n in text for n in forms_of_h), (role, url)  # ...without its number
            assert f"/supporters/{h_id}" not in text
        page = html(client, "/reports")
        assert "anonymous" in page
        # A named report links to its supporter for organizers only, and never shows a number either.
        assert (f'href="/supporters/{a_id}"' in page) == (role != "viewer")
        assert A not in page and B not in page


def test_export_with_the_filter_and_its_audit_event(app, client, auth) -> None:
    reports(app)
    auth.login("organizer")
    response = client.get("/reports/export?place=Zomba&delivered=yes")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(r["date"], r["place"], r["service"], r["delivered"], r["details"], r["anonymous"]) for r in rows] == [
        ("2025-01-14", "Zomba", "water", "yes", "borehole fixed", "no")]
    assert "number" not in rows[0]
    with app.extensions["gateway"].sessions() as s:
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == "export.reports")).all()
    assert event.actor == "organizer@example.org" and event.at is not None
    assert event.detail == {"filter": {"place": "Zomba", "delivered": "yes"}, "count": 1}

    everything = client.get("/reports/export").get_data(as_text=True)
    assert len(everything.strip().splitlines()) == 5  # header and four reports
    with app.extensions["gateway"].sessions() as s:
        filters = [e.detail["filter"] for e in s.scalars(select(AuditEvent).where(
            AuditEvent.action == "export.reports").order_by(AuditEvent.id))]
    assert filters == [{"place": "Zomba", "delivered": "yes"}, {}]


def test_reports_need_a_login(client) -> None:
    assert client.get("/reports").status_code == 302
    assert client.get("/reports/export").status_code == 302
