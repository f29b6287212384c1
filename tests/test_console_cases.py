"""Console: the Cases and Officials pages, the dashboard's overdue tile, roles, and reporters never shown."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from gateway.core.phones import mask_number
from gateway.models import AuditEvent, Case
from tests.case_rows import OFFICIAL_NUMBER, reporter_identity, seed
from tests.conftest import Auth


def html(client, url: str) -> str:  # type: ignore[no-untyped-def]
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def listed(client, url: str) -> set[str]:  # type: ignore[no-untyped-def]
    """The refs of the cases a list page shows."""
    page = html(client, url)
    return set(re.findall(r'<tr class="[^"]*" data-ref="(\w+)"', page))


def test_the_list_filters_by_status_place_service_and_official(app, client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    seeded = seed(app)
    auth.login("viewer")
    assert listed(client, "/cases") == {"CZMB7", "CMNG8", "CBLT9"}
    # Overdue: marked so, or waiting past its deadline.
    assert listed(client, "/cases?status=overdue") == {"CZMB7", "CBLT9"}
    assert listed(client, "/cases?status=open") == {"CMNG8"}
    assert listed(client, "/cases?status=acknowledged") == {"CZMB7"}
    assert listed(client, "/cases?place=Zomba") == {"CZMB7"}
    assert listed(client, "/cases?service=clinic") == {"CZMB7", "CBLT9"}
    assert listed(client, f"/cases?official={seeded.john}") == {"CBLT9"}
    assert listed(client, "/cases?service=clinic&place=Blantyre&status=overdue") == {"CBLT9"}
    page = html(client, "/cases?status=nonsense&official=x")
    assert "There is no status" in page and "official filter was not understood" in page
    assert listed(client, "/cases?status=nonsense") == {"CZMB7", "CMNG8", "CBLT9"}
    # Overdue rows are highlighted; the deadline is in the console's local time (Malawi, UTC+2).
    rows = {m.group(2): m.group(1)
            for m in re.finditer(r'<tr class="([^"]*)" data-ref="(\w+)"', html(client, "/cases"))}
    assert rows == {"CZMB7": "over", "CBLT9": "over", "CMNG8": ""}
    page = html(client, "/cases")
    assert "Africa/Blantyre" in page and "Grace Phiri" in page and "rung 2" in page


def test_paging_keeps_the_filter(app, client, auth: Auth, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seed(app)
    from gateway.web.console import cases

    monkeypatch.setattr(cases, "PER_PAGE", 1)
    auth.login("viewer")
    first = html(client, "/cases?service=clinic")
    assert "1–1 of 2 cases" in first and "service=clinic&amp;page=2" in first
    assert len(listed(client, "/cases?service=clinic&page=2")) == 1


def test_a_case_page_shows_timeline_reports_and_texts_never_a_reporter(app, client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    seeded = seed(app)
    for role in ("viewer", "organizer", "admin"):
        client = app.test_client()
        Auth(app, client).login(role)
        page = html(client, f"/cases/{seeded.zomba}")
        timeline = page[page.index('id="timeline"'):page.index('id="case-reports"')]
        assert "opened" in timeline and "acknowledged" in timeline and "Grace Phiri (official)" in timeline
        reports = page[page.index('id="case-reports"'):page.index('id="official-messages"')]
        assert "RNAMED1" in reports and "RANON22" in reports and "nurse absent" in reports
        assert "RWATER3" not in reports
        texts = page[page.index('id="official-messages"'):]
        assert "Reply ACK CZMB7" in texts and "ACK czmb7" in texts
        for identity in reporter_identity(app):
            assert identity not in page, (role, identity)
        assert ("Close the case" in page) == (role != "viewer")
        assert OFFICIAL_NUMBER not in page  # the official's number is on the directory, not here
    assert client.get("/cases/999999").status_code == 404


def test_viewers_read_and_cannot_act(app, client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    seeded = seed(app)
    auth.login("viewer")
    token = auth.csrf(f"/cases/{seeded.zomba}")
    for action, data in (("send", {}), ("escalate", {}), ("close", {"note": "done", "resolved": "yes"}),
                         ("merge", {"other": str(seeded.blantyre)}), ("split", {"report": "RANON22"})):
        response = client.post(f"/cases/{seeded.zomba}/{action}", data={"csrf_token": token, **data})
        assert response.status_code == 403, action
    assert client.post("/cases/new", data={"csrf_token": token, "place": "Zomba", "service": "clinic",
                                           "reports": "RANON22"}).status_code == 403
    assert client.get("/officials/import").status_code == 403
    with app.extensions["gateway"].sessions() as s:
        assert s.get(Case, seeded.zomba).status == "acknowledged"  # type: ignore[union-attr]
        assert not s.scalars(select(AuditEvent).where(AuditEvent.action.like("case.%"))).all()


def test_actions_need_the_csrf_token(app, client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    seeded = seed(app)
    auth.login("organizer")
    response = client.post(f"/cases/{seeded.zomba}/close", data={"note": "fixed"})
    assert response.status_code == 400
    with app.extensions["gateway"].sessions() as s:
        assert s.get(Case, seeded.zomba).status == "acknowledged"  # type: ignore[union-attr]


def test_closing_needs_a_note(app, client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    seeded = seed(app)
    auth.login("organizer")
    token = auth.csrf(f"/cases/{seeded.zomba}")
    response = client.post(f"/cases/{seeded.zomba}/close", data={"csrf_token": token, "note": "   "},
                           follow_redirects=True)
    assert "write a note saying why" in response.get_data(as_text=True)
    with app.extensions["gateway"].sessions() as s:
        assert s.get(Case, seeded.zomba).status == "acknowledged"  # type: ignore[union-attr]


def test_officials_directory_masks_numbers_for_viewers_and_shows_answers(app, client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    seeded = seed(app)
    auth.login("viewer")
    page = html(client, "/officials")
    assert "Grace Phiri" in page and "District Commissioner" in page
    assert OFFICIAL_NUMBER not in page and mask_number(OFFICIAL_NUMBER) in page
    row = page[page.index(f'id="official-{seeded.grace}"'):]
    row = row[:row.index("</tr>")]
    cells = re.findall(r'<td class="n">([^<]*)</td>', row)
    # open cases, sent, ACK, PROMISE, DONE, overdue, median hours sent -> ACK (1 h -> 5 h: 4.0)
    assert cells == ["1", "1", "1", "0", "0", "0", "4.0"], cells
    organizer = app.test_client()
    Auth(app, organizer).login("organizer")
    assert OFFICIAL_NUMBER in html(organizer, "/officials")


def test_dashboard_counts_overdue_cases_and_links_to_them(app, client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    auth.login("viewer")
    assert re.search(r'id="overdue-cases"><b>0</b>', html(client, "/"))
    seed(app)
    page = html(client, "/")
    assert re.search(r'href="/cases\?status=overdue" id="overdue-cases"><b>2</b> overdue cases', page)
    assert 'href="/cases"' in page and 'href="/officials"' in page  # the nav


@pytest.mark.parametrize("path", ["/cases", "/officials"])
def test_pages_need_a_login(client, path: str) -> None:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# --------------------------------------------------------------------------- organizers' moves (the domain's)


def post(client, auth: Auth, url: str, page: str, **data: str) -> str:  # type: ignore[no-untyped-def]
    response = client.post(url, data={"csrf_token": auth.csrf(page), **data}, follow_redirects=True)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def case_of(app, case_id: int) -> Case:  # type: ignore[no-untyped-def]
    with app.extensions["gateway"].sessions() as s:
        case = s.get(Case, case_id)
        assert case is not None
        s.expunge(case)
        return case


def test_an_organizer_sends_escalates_and_closes_each_move_audited(app, client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    seeded = seed(app)
    auth.login("organizer")
    url = f"/cases/{seeded.mangochi}"
    # Nobody answers for water in Mangochi: nothing is sent, and the organizer is told why.
    page = post(client, auth, f"{url}/send", url)
    assert "Not sent: no official at rung 1 answers for water in Mangochi" in page
    assert case_of(app, seeded.mangochi).status == "open"
    # Zomba: escalated from Grace (rung 1) to John (rung 2), by SMS.
    zomba = f"/cases/{seeded.zomba}"
    page = post(client, auth, f"{zomba}/escalate", zomba, note="no answer by phone either")
    assert "Escalated to the next rung." in page
    case = case_of(app, seeded.zomba)
    assert case.level == 2 and case.official_id == seeded.john and case.status == "sent"
    timeline = page[page.index('id="timeline"'):page.index('id="case-reports"')]
    assert "no answer by phone either" in timeline and "escalated to District Commissioner John Banda" in timeline
    assert "organizer@example.org" in timeline
    texts = page[page.index('id="official-messages"'):]
    assert "John Banda" in texts and "CZMB7" in texts
    for identity in reporter_identity(app):
        assert identity not in page
    # A refused move: flashed as the domain says it, nothing changes.
    page = post(client, auth, f"{zomba}/escalate", zomba)
    assert "Not done: No official above rung 2 answers for clinic in Zomba" in page
    # Closed with a note, as resolved.
    page = post(client, auth, f"{zomba}/close", zomba, note="clinic staffed again", resolved="yes")
    assert "Case closed as resolved." in page and case_of(app, seeded.zomba).status == "resolved"
    page = post(client, auth, f"{zomba}/close", zomba, note="again")
    assert "Case closed." in page and case_of(app, seeded.zomba).status == "closed"
    page = post(client, auth, f"{zomba}/close", zomba, note="third time")
    assert "Not done: Case CZMB7 is closed: it cannot become closed." in page
    with app.extensions["gateway"].sessions() as s:
        actions = [a for a, in s.execute(select(AuditEvent.action).where(AuditEvent.actor == "organizer@example.org",
                                                                        AuditEvent.action.like("case.%"))
                                         .order_by(AuditEvent.id))]
    assert actions == ["case.no_official", "case.overdue", "case.sent", "case.resolved", "case.closed"]


def test_an_organizer_opens_splits_and_merges_by_hand(app, client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    seeded = seed(app)
    auth.login("organizer")
    zomba = f"/cases/{seeded.zomba}"
    page = post(client, auth, f"{zomba}/split", zomba, report="RANON22")
    assert "1 report(s) moved to the new case" in page
    new_ref = re.search(r"<h1>Case (\w+)</h1>", page).group(1)  # type: ignore[union-attr]
    assert new_ref != "CZMB7" and "RANON22" in page and "RNAMED1" not in page
    with app.extensions["gateway"].sessions() as s:
        new_id = s.scalar(select(Case.id).where(Case.ref == new_ref))
    assert case_of(app, seeded.zomba).report_count == 1
    page = post(client, auth, f"{zomba}/merge", zomba, other=str(new_id))
    assert f"Case {new_ref} merged into this one." in page and case_of(app, seeded.zomba).report_count == 2
    assert case_of(app, new_id).status == "closed"
    # Open by hand: a report already in a case is refused with the domain's sentence.
    page = post(client, auth, "/cases/new", "/cases", place="Zomba", service="clinic", reports="RANON22")
    assert "No case opened: A report can be in one case only" in page
    page = post(client, auth, "/cases/new", "/cases", place="Zomba", service="clinic", reports="RNOPE")
    assert "no report has the reference RNOPE" in page
    with app.extensions["gateway"].sessions() as s, s.begin():
        from gateway.models import Report

        s.add(Report(ref="RLOOSE5", anonymous=True, service="clinic", place="Zomba", delivered="no"))
    page = post(client, auth, "/cases/new", "/cases", place="Zomba", service="clinic", reports="rloose5")
    assert "opened." in page and "RLOOSE5" in page and "opened by hand with 1 report(s)" in page


def test_officials_import_lists_bad_lines(app, client, auth: Auth) -> None:  # type: ignore[no-untyped-def]
    import io

    auth.login("organizer")
    csv_text = ("number,name,role,language,places,services,level\n"
                "0991000001,Grace Phiri,District Health Officer,en,Zomba,clinic,1\n"
                "not-a-number,Nobody,Officer,en,Zomba,clinic,1\n")
    response = client.post("/officials/import", data={"csrf_token": auth.csrf("/officials/import"),
                                                      "file": (io.BytesIO(csv_text.encode()), "officials.csv")},
                           content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "1 official(s) imported" in page
    assert "line 3:" in page
    assert "Grace Phiri" in html(client, "/officials")
    with app.extensions["gateway"].sessions() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "officials.import")).one()
    assert event.detail["imported"] == 1 and event.detail["errors"] == 1
