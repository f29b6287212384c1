"""The console in Spanish, in a real headless Chromium: every page for a browser that asks for Spanish,
and the language chosen on the Account page (kept on the account) or in the header."""
from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from babel.messages.pofile import read_po
from playwright.sync_api import Page, expect
from sqlalchemy import select

from gateway.models import Broadcast, Case, Contact
from gateway.outbound import broadcasts
from tests.browser import shot
from tests.case_rows import seed
from tests.conftest import PASSWORD
from tests.evidence_helpers import add_schedule
from tests.test_browser_console import add_supporters, join, no_horizontal_scroll
from tests.test_i18n import SPANISH
from tests.transcript import Phone

NAV = {"Dashboard": "Panel", "Supporters": "Simpatizantes", "Broadcasts": "Difusiones", "Reports": "Reportes",
       "Cases": "Casos", "Officials": "Funcionarios", "Schedules": "Calendarios", "Inbox": "Bandeja de entrada",
       "Flows": "Flujos", "Simulator": "Simulador", "My phone": "Mi teléfono", "Accounts": "Cuentas",
       "Audit log": "Registro de auditoría"}


def english_phrases() -> list[str]:
    """The console's English sentences whose Spanish differs: none of them may show on a Spanish page."""
    with SPANISH.open("rb") as f:
        catalog = read_po(f, locale="es")
    phrases = []
    for m in catalog:
        if not m.id or isinstance(m.id, tuple) or "%(" in m.id or "<" in m.id or m.id == m.string:
            continue
        if len(m.id) >= 12 and " " in m.id:
            phrases.append(m.id)
    return phrases


@pytest.fixture
def spanish_page(chromium) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    """A page in a browser set to Spanish (Honduras): it sends Accept-Language: es-HN."""
    context = chromium.new_context(locale="es-HN", viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


def log_in(page: Page, base: str, email: str, button: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click(f"#login-form button:has-text('{button}')")
    expect(page.locator(".who")).to_contain_text(email)


def test_every_console_page_in_spanish(app, auth, live, spanish_page: Page) -> None:  # type: ignore[no-untyped-def]
    page = spanish_page
    seed(app)  # officials, reports and three cases
    join(app, "+265991110001", "Chikondi", "Zomba")
    Phone(app).send("+265991110001", "When is the next meeting in Zomba?")  # nothing handles it: the inbox
    add_supporters(app, [("+265991110002", "Grace", "Blantyre")])
    schedule_id = add_schedule(app, place="Zomba", service="clinic", starts_on="2026-11-03", every_days="14",
                               labels={"en": "the mobile clinic", "es": "la clinica movil"})
    with app.extensions["gateway"].sessions() as s, s.begin():
        draft = broadcasts.create(s, {"en": "Meeting on Friday"}, default_language="en", place=None, language=None,
                                  tag=None, reply_keyword="YES", urgent=False, send_at=None, created_by="t")
    with app.extensions["gateway"].sessions() as s:
        draft_id = s.scalar(select(Broadcast.id).where(Broadcast.id == draft.id))
        contact_id = s.scalar(select(Contact.id).limit(1))
        case_id = s.scalar(select(Case.id).where(Case.ref == "CZMB7"))

    page.goto(live.url + "/login")
    expect(page.locator("h1")).to_have_text("Iniciar sesión")
    log_in(page, live.url, auth.user("admin"), "Iniciar sesión")
    headings = {
        "/": "Panel", "/supporters": "Simpatizantes", f"/supporters/{contact_id}": None,
        "/supporters/import": "Importar simpatizantes desde un archivo CSV", "/broadcasts": "Difusiones",
        "/broadcasts/new": "Nueva difusión", f"/broadcasts/{draft_id}": f"Difusión {draft_id}: borrador",
        "/reports": "Reportes de servicios", "/cases": "Casos", f"/cases/{case_id}": None,
        "/officials": "Funcionarios", "/officials/import": "Importar funcionarios desde un archivo CSV",
        "/schedules": "Calendarios", f"/schedules/{schedule_id}/edit": "Calendarios",
        "/schedules/tell?place=Zomba&service=clinic": "Nueva difusión",
        "/inbox": "Bandeja de entrada", "/flows": "Flujos", "/simulator": "Simulador", "/account": None,
        "/users": "Cuentas", "/audit": "Registro de auditoría", "/set-aside": "Textos apartados",
    }
    english = english_phrases()
    assert len(english) > 200  # the check below is worth something
    for path, heading in headings.items():
        response = page.goto(live.url + path)
        assert response is not None and response.status == 200, (path, response and response.status)
        assert page.locator("html").get_attribute("lang") == "es"
        if heading:
            expect(page.locator("h1")).to_have_text(heading)
        nav = page.locator("header.top nav").inner_text()
        assert all(spanish in nav for spanish in NAV.values()), (path, nav)
        left = [w for w in NAV if re.search(rf"(^|\n|\s){re.escape(w)}($|\n|\s)", nav)]
        assert left == [], (path, left)
        body = page.locator("body").inner_text()
        assert [p for p in english if p in body] == [], path
        assert no_horizontal_scroll(page) <= 0, f"{path} is wider than the window"
        shot(page, "es" + path.replace("/", "-").rstrip("-"))
    # The dashboard's numbers and the reports' summary are the Spanish way round.
    page.goto(live.url + "/")
    expect(page.locator(".tiles")).to_contain_text("simpatizantes activos")
    expect(page.locator(".tiles")).to_contain_text("mensajes hoy")
    page.goto(live.url + "/reports")
    expect(page.locator("p.summary")).to_contain_text("reportes")
    expect(page.locator("#by-place title").first).to_have_text("Reportes por lugar")
    # The dashboard's Sending list in words, and the schedules' table, in Spanish.
    page.goto(live.url + "/")
    expect(page.locator("#waiting")).to_have_text("No hay mensajes en espera.")
    page.goto(live.url + "/schedules")
    expect(page.locator(f"#schedule-{schedule_id}")).to_contain_text("14 días")
    expect(page.locator(f"#schedule-{schedule_id}")).to_contain_text("activo")
    expect(page.locator(f"#schedule-{schedule_id}")).to_contain_text("la clinica movil")
    page.click(f"#schedule-{schedule_id} button:has-text('Detener')")
    expect(page.locator("main .flash")).to_have_text(f"Calendario {schedule_id} detenido.")
    expect(page.locator(f"#schedule-{schedule_id}")).to_contain_text("detenido")
    # The brief from the Reports page: the form speaks Spanish and offers the brief in Spanish first.
    page.goto(live.url + "/reports")
    expect(page.locator("#brief-card h2")).to_have_text("Informe de una página")
    expect(page.locator("#brief-form select[name=lang]")).to_have_value("es")
    page.fill("#brief-form input[name=month]", "2026-11")
    page.click("#brief-form button[value=html]")
    expect(page.locator("h1")).to_contain_text("Entrega de servicios en")
    page.goto(live.url + "/brief?place=Narnia&month=2026-11")
    expect(page.locator("main h1")).to_have_text("No se pudo hacer el informe")
    # An error page, and a flash after an action, in Spanish too.
    response = page.goto(live.url + "/no-such-page")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Página no encontrada")
    page.goto(live.url + f"/cases/{case_id}")
    page.fill("#close-form textarea[name=note]", "La clínica tiene dos enfermeras otra vez")
    page.check("#close-form input[name=resolved]")
    page.click("#close-form button:has-text('Cerrar el caso')")
    expect(page.locator(".flash.ok")).to_have_text("Caso cerrado como resuelto.")
    expect(page.locator("#case-status")).to_have_text("resuelto")
    # The longer Spanish labels still fit a phone.
    page.set_viewport_size({"width": 375, "height": 740})
    for path in ("/", "/broadcasts/new", "/account"):
        page.goto(live.url + path)
        assert no_horizontal_scroll(page) <= 0, f"{path} is wider than a 375 px phone in Spanish"
    shot(page, "es-account-phone")


def test_the_language_is_chosen_on_the_account_page_and_kept(app, auth, live, page: Page, chromium) -> None:  # type: ignore[no-untyped-def]
    email = auth.user("organizer")
    log_in(page, live.url, email, "Log in")  # an English browser: English
    page.goto(live.url + "/account")
    expect(page.locator("#my-language h2")).to_have_text("Language of the console")
    page.check("#language-form input[value=es]")
    page.click("#language-save")
    expect(page.locator("#my-language h2")).to_have_text("Idioma de la consola")
    expect(page.locator("header.top nav")).to_contain_text("Difusiones")
    page.click("header.top nav >> text=Difusiones")
    expect(page.locator("h1")).to_have_text("Difusiones")
    shot(page, "es-account-switch")

    # Kept on the account: another English browser, after logging in, gets Spanish.
    other = chromium.new_context(locale="en-US")
    try:
        second = other.new_page()
        log_in(second, live.url, email, "Log in")
        expect(second.locator("h1")).to_have_text("Panel")
        # The header's switch, on any page, back to English; the page stays where it was.
        second.goto(live.url + "/supporters")
        second.select_option("#language-choice", "en")
        second.click("#language-switch input[type=submit]")
        expect(second.locator("h1")).to_have_text("Supporters")
        assert second.url.endswith("/supporters")
    finally:
        other.close()
    page.reload()
    expect(page.locator("h1")).to_have_text("Broadcasts")
