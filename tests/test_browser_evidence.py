"""Schedules and "Tell supporters" in a real headless Chromium: a schedule made through the form, and a
place's summary prefilled into the normal broadcast form, then saved as a draft for its preview."""
from __future__ import annotations

from datetime import datetime

from playwright.sync_api import Page, expect
from sqlalchemy import select

from gateway.models import Broadcast, ServiceSchedule
from tests.browser import shot
from tests.evidence_helpers import tick
from tests.helpers import add, svc
from tests.test_browser_console import login
from tests.transcript import Phone

A, B, C = "+265991000001", "+265991000002", "+265991000003"


def test_an_organizer_records_a_schedule_and_tells_the_place(app, auth, live, page: Page) -> None:  # type: ignore[no-untyped-def]
    for number in (A, B, C):
        add(app, number, tags=("health",))
    login(page, live.url, auth.user("organizer"))
    page.click("header.top nav >> text=Schedules")
    expect(page.locator("h1")).to_have_text("Schedules")
    page.select_option("#schedule-form select[name=place]", "Zomba")
    page.fill("#service", "clinic")
    page.fill("#label-en", "the mobile clinic")
    page.fill("#label-es", "la clinica movil")
    page.fill("#starts_on", "2026-11-03")
    page.fill("#every_days", "7")
    page.fill("#check_at", "16:00")
    page.fill("#sample_size", "3")
    page.fill("#no_threshold", "2")
    page.click("#schedule-form button[type=submit]")
    expect(page.locator(".flash").first).to_contain_text("Schedule saved: clinic in Zomba")
    expect(page.locator("#schedules tbody tr")).to_have_count(1)
    expect(page.locator("#schedules")).to_contain_text("the mobile clinic")
    shot(page, "schedules")
    with svc(app).sessions() as s:
        row = s.scalars(select(ServiceSchedule)).one()
        assert (row.every_days, row.sample_size, row.no_threshold, row.labels["es"]) == (7, 3, 2, "la clinica movil")

    # Two due dates answered: it came on the 3rd, not on the 10th.
    phone = Phone(app)
    for day, answers in ((3, ("1", "YES", "1")), (10, ("2", "1", "2"))):
        tick(app, datetime(2026, 11, day, 14, 0))
        phone.now = datetime(2026, 11, day, 15, 0)
        for number, answer in zip((A, B, C), answers, strict=True):
            phone.send(number, answer)
    page.goto(f"{live.url}/schedules")
    expect(page.locator("#schedules")).to_contain_text("1 came, 1 did not")
    page.goto(f"{live.url}/schedules/tell?place=Zomba&service=clinic&month=2026-11")
    expect(page.locator("h1")).to_have_text("New broadcast")
    expect(page.locator("#text-en")).to_have_value(
        "Zomba: the mobile clinic came 1 of 2 due days in November. Thank you for reporting.")
    expect(page.locator("#text-es")).to_have_value(
        "Zomba: la clinica movil llego 1 de 2 dias previstos en noviembre. Gracias por reportar.")
    expect(page.locator("#place")).to_have_value("Zomba")
    expect(page.locator("#segments-en")).to_have_text("1")
    page.fill("#text-en", "Zomba: the mobile clinic came 1 of 2 days in November. Thank you for reporting!")
    shot(page, "tell-supporters")
    page.click("#preview-button")
    expect(page.locator("body")).to_contain_text("Zomba")
    with svc(app).sessions() as s:
        b = s.scalars(select(Broadcast)).one()
        assert (b.place, b.status) == ("Zomba", "draft")  # the normal preview: nothing sent before launch
        assert b.texts["en"].endswith("Thank you for reporting!")
