"""The Cases pages in a real headless Chromium: the list and its overdue rows, a timeline, closing with a note."""
from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import select

from gateway.models import AuditEvent, Case
from tests.browser import shot
from tests.case_rows import REPORTER_NAME, REPORTER_NUMBER, seed
from tests.test_browser_console import login


def test_an_organizer_reads_a_case_and_closes_it_with_a_note(app, auth, live, page: Page) -> None:  # type: ignore[no-untyped-def]
    seeded = seed(app)
    login(page, live.url, auth.user("organizer"))
    # From the dashboard's tile to the overdue cases.
    expect(page.locator("#overdue-cases b")).to_have_text("2")
    page.click("#overdue-cases")
    expect(page.locator("#cases tbody tr")).to_have_count(2)
    expect(page.locator("#cases tr.over")).to_have_count(2)
    page.click("header.top nav >> text=Cases")
    expect(page.locator("#cases tbody tr")).to_have_count(3)
    page.select_option("select[name=service]", "water")
    page.click("form.filters button[type=submit]")
    expect(page.locator("#cases tbody tr")).to_have_count(1)
    expect(page.locator("#cases")).to_contain_text("CMNG8")
    page.click("header.top nav >> text=Cases")
    shot(page, "cases-list")
    page.click("#cases >> text=CZMB7")
    expect(page.locator("h1")).to_have_text("Case CZMB7")
    expect(page.locator("#timeline tbody tr")).to_have_count(3)
    expect(page.locator("#timeline")).to_contain_text("Grace Phiri (official)")
    expect(page.locator("#case-reports")).to_contain_text("RNAMED1")
    expect(page.locator("#official-messages")).to_contain_text("ACK czmb7")
    body = page.locator("body").inner_text()
    assert REPORTER_NAME not in body and REPORTER_NUMBER not in body
    # The note is required: the browser will not submit the form without it.
    page.click("#close-form button[type=submit]")
    expect(page.locator("h1")).to_have_text("Case CZMB7")
    assert page.locator("#close-form textarea[name=note]").evaluate("el => !el.validity.valid")
    page.fill("#close-form textarea[name=note]", "The clinic has two nurses again")
    page.check("#close-form input[name=resolved]")
    page.click("#close-form button[type=submit]")
    expect(page.locator(".flash.ok")).to_have_text("Case closed as resolved.")
    expect(page.locator("#case-status")).to_have_text("resolved")
    expect(page.locator("#timeline tbody tr")).to_have_count(4)
    expect(page.locator("#timeline tbody tr").last).to_contain_text("The clinic has two nurses again")
    shot(page, "case-closed")
    with app.extensions["gateway"].sessions() as s:
        assert s.get(Case, seeded.zomba).status == "resolved"  # type: ignore[union-attr]
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "case.resolved")).one().actor == \
            "organizer@example.org"


def test_a_viewer_sees_the_case_but_no_actions(app, auth, live, page: Page) -> None:  # type: ignore[no-untyped-def]
    seeded = seed(app)
    login(page, live.url, auth.user("viewer"))
    page.goto(f"{live.url}/cases/{seeded.zomba}")
    expect(page.locator("#timeline tbody tr")).to_have_count(3)
    expect(page.locator("#close-form")).to_have_count(0)
    expect(page.locator("#send-form")).to_have_count(0)
