"""The brief in a real headless Chromium: from the Reports page (with its silent places) and from a case page,
in English and Spanish, its stylesheet applied under the console's CSP, printed by Chromium and downloaded as PDF."""
from __future__ import annotations

import io

from playwright.sync_api import Page, expect
from pypdf import PdfReader

from tests import brief_rows
from tests.browser import shot
from tests.brief_rows import MONTH, REPORTER, SILENT_PLACE
from tests.test_browser_console import login


def test_an_organizer_makes_the_brief_from_the_reports_page(app, auth, live, page: Page) -> None:  # type: ignore[no-untyped-def]
    brief_rows.seed(app)
    login(page, live.url, auth.user("viewer"))
    page.goto(f"{live.url}/reports?from=2026-11-01&to=2026-11-30")
    expect(page.locator("#silent tbody tr")).to_have_count(1)
    expect(page.locator("#silent")).to_contain_text(SILENT_PLACE)
    page.select_option("#brief-form select[name=place]", "Zomba")
    page.fill("#brief-form input[name=month]", MONTH)
    page.select_option("#brief-form select[name=lang]", "es")
    page.click("#brief-form button[value=html]")
    expect(page.locator("h1")).to_have_text("Entrega de servicios en Zomba")
    expect(page.locator("#headline")).to_contain_text("Clínica móvil: llegó 1 de 2 fechas prometidas en noviembre de 2026")
    expect(page.locator("#delivery svg.delivery")).to_have_count(2)
    expect(page.locator("#cases")).to_contain_text("VENCIDO")
    fingerprint = page.locator("#fingerprint").inner_text()
    # The stylesheet is linked, not inline, and the CSP lets it in: headings are set in capitals.
    assert page.locator("h2").first.evaluate("el => getComputedStyle(el).textTransform") == "uppercase"
    assert REPORTER not in page.locator("body").inner_text()
    shot(page, "brief-es")
    page.click("#brief-nav >> text=English")
    expect(page.locator("h1")).to_have_text("Service delivery in Zomba")
    expect(page.locator("#fingerprint")).to_have_text(fingerprint)  # the same figures in another language
    # Chromium's own print of the page fits one A4 sheet too.
    page.emulate_media(media="print")
    printed = PdfReader(io.BytesIO(page.pdf(format="A4", print_background=True)))
    assert len(printed.pages) == 1
    page.emulate_media(media="screen")
    shot(page, "brief-en")
    with page.expect_download() as download:
        page.click("#brief-nav >> text=PDF")
    reader = PdfReader(download.value.path())
    assert len(reader.pages) == 1 and fingerprint in (reader.pages[0].extract_text() or "")


def test_a_case_page_links_to_the_case_brief(app, auth, live, page: Page) -> None:  # type: ignore[no-untyped-def]
    seeded = brief_rows.seed(app)
    login(page, live.url, auth.user("organizer"))
    page.goto(f"{live.url}/cases/{seeded.case_id}")
    page.click("#case-brief >> text=view")
    expect(page.locator("h1")).to_have_text("Case CZMB7: Mobile clinic in Zomba")
    expect(page.locator("#timeline")).to_contain_text("Grace Phiri, District Health Officer")
    assert REPORTER not in page.locator("body").inner_text()
    page.goto(f"{live.url}/brief?place=Narnia&month={MONTH}")
    expect(page.locator("#brief-problem")).to_contain_text("Narnia")
