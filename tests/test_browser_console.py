"""The organizers' console in a real headless Chromium: import, compose, launch, simulator, reports, audit.

Every wait is bounded (Playwright's auto-waiting `expect`, never a sleep used as an assertion).
Screenshots of the main pages are kept in tests/artifacts/.
"""
from __future__ import annotations

import ctypes
import re
import threading
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Page, expect

from gateway.outbound import broadcasts
from gateway.people import csvio
from gateway.outbound import queues
from gateway.models import utcnow
from tests.browser import LiveServer, shot
from tests.conftest import PASSWORD, make_stack_app
from tests.helpers import change_settings
from tests.transcript import Phone

ZOMBA = ["+265991110001", "+265991110002", "+265991110003"]
ELSEWHERE = ["+265991110004", "+265991110005"]
PLAIN = "Meeting at the clinic on Friday at 10, bring your card"
REPORT = "REPORT CLINIC ZOMBA NO nurse absent"
TEXT = "Hello {name}: water point meeting in {place} on Friday."


# --------------------------------------------------------------------------- helpers


def login(page: Page, base: str, email: str) -> None:
    """Log in through the form, as a person would."""
    page.goto(base + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".who")).to_contain_text(email)


def join(app, number: str, name: str, place: str) -> None:  # type: ignore[no-untyped-def]
    """A supporter joins by SMS: JOIN, name, district, interests."""
    phone = Phone(app)
    replies = [phone.send(number, text) for text in ("JOIN", name, place, "1")]
    assert replies[-1] and replies[-1][0].startswith("Welcome!"), replies


def add_supporters(app, rows: list[tuple[str, str, str]]) -> None:  # type: ignore[no-untyped-def]
    """Supporters who agreed to hear from us (consent_at set), written straight to the database."""
    svc = app.extensions["gateway"]
    parsed = [csvio.ContactRow(i + 2, number, name, "en", place, ()) for i, (number, name, place) in enumerate(rows)]
    with svc.sessions() as s, s.begin():
        csvio.apply_contacts(s, parsed, utcnow())


def no_horizontal_scroll(page: Page) -> int:
    """How many CSS pixels the page is wider than the window (0 when nothing sticks out)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def _stop_thread(thread: threading.Thread) -> None:
    """End the embedded worker's endless loop (it catches Exception, not SystemExit), quietly."""
    if not thread.is_alive() or thread.ident is None:
        return
    previous = threading.excepthook

    def hook(args):  # type: ignore[no-untyped-def]
        if not (args.thread is thread and args.exc_type is SystemExit):
            previous(args)

    threading.excepthook = hook
    try:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
        thread.join(10)
    finally:
        threading.excepthook = previous


@pytest.fixture
def worker_app(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """The app with the real embedded worker (fakeredis; started by the first request), paced slowly
    (2 segments/s) so a launch takes a few seconds and the progress page has something to watch.
    The worker thread is stopped afterwards so it never reconciles another test's database."""
    threads: list[threading.Thread] = []
    real_start = queues.start_embedded_worker

    def start_and_keep(app, *args, **kwargs):  # type: ignore[no-untyped-def]
        thread = real_start(app, *args, **kwargs)
        threads.append(thread)
        return thread

    monkeypatch.setattr(queues, "start_embedded_worker", start_and_keep)
    app = make_stack_app(db_url, None, tmp_path, EMBEDDED_WORKER=True, SENDER_RATE=2.0)
    yield app
    for thread in threads:
        _stop_thread(thread)
    app.extensions["gateway"].engine.dispose()
    assert not any(t.is_alive() for t in threads), "the embedded worker did not stop"


# --------------------------------------------------------------------------- 1. log in


def test_organizer_logs_in_through_the_form(app, auth, live, page: Page) -> None:  # type: ignore[no-untyped-def]
    email = auth.user("organizer")
    page.goto(live.url + "/supporters")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(live.url + "/supporters")  # back where they were going
    expect(page.locator(".who")).to_have_text(f"{email} (organizer)")
    expect(page.locator("header.top nav")).not_to_contain_text("Audit log")  # admins only
    page.click("header.top nav >> text=Dashboard")
    expect(page.locator("#active-count")).to_have_text("0")


# --------------------------------------------------------------------------- 2. import


def test_import_reports_the_bad_line_and_keeps_the_good_rows(app, auth, live, page: Page,  # type: ignore[no-untyped-def]
                                                             tmp_path: Path) -> None:
    csv_file = tmp_path / "supporters.csv"
    csv_file.write_text("number,name,language,place,tags\n"
                        "0991234567,Chikondi Banda,en,Zomba,health;water\n"
                        "0991234568,Grace Phiri,ny,Zomba,\n"
                        "12ab,Bad Number,en,Zomba,\n"          # line 4: not a phone number
                        "0991234569,Maria Mwale,en,Blantyre,water\n", encoding="utf-8")
    login(page, live.url, auth.user("organizer"))
    page.goto(live.url + "/supporters")
    page.click("text=Import a CSV file")
    expect(page).to_have_url(live.url + "/supporters/import")
    page.set_input_files("input[type=file]", str(csv_file))
    page.click("form.card button[type=submit]")
    expect(page.locator("section.result")).to_contain_text("3 created, 0 updated, 1 line(s) skipped")
    errors = page.locator("ul.errors li")
    expect(errors).to_have_count(1)
    expect(errors.first).to_contain_text(re.compile(r"^line 4: number '12ab'"))

    page.goto(live.url + "/supporters")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(3)
    for name, number, place in (("Chikondi Banda", "+265991234567", "Zomba"),
                                ("Grace Phiri", "+265991234568", "Zomba"),
                                ("Maria Mwale", "+265991234569", "Blantyre")):
        row = rows.filter(has_text=name)
        expect(row).to_have_count(1)
        expect(row.locator("td.num")).to_have_text(number)
        expect(row).to_contain_text(place)
    expect(page.locator("table")).not_to_contain_text("Bad Number")
    expect(page.locator(".pager").first).to_contain_text("1–3 of 3 supporters")
    shot(page, "supporters")


# --------------------------------------------------------------------------- 3. compose


def test_compose_counters_fix_and_audience(app, auth, live, page: Page) -> None:  # type: ignore[no-untyped-def]
    join(app, ZOMBA[0], "Chikondi", "Zomba")
    add_supporters(app, [(ZOMBA[1], "Grace", "Zomba"), (ZOMBA[2], "Tadala", "Zomba"),
                         (ELSEWHERE[0], "Maria", "Blantyre"), (ELSEWHERE[1], "Yamikani", "Lilongwe")])
    login(page, live.url, auth.user("organizer"))
    page.goto(live.url + "/broadcasts/new")
    expect(page.locator("#audience-count")).to_have_text("5")

    page.fill("#text-en", PLAIN)
    expect(page.locator("#encoding-en")).to_have_text("GSM-7")
    expect(page.locator("#chars-en")).to_have_text(str(len(PLAIN)))
    expect(page.locator("#segments-en")).to_have_text("1")
    expect(page.locator("#ucs2-en")).to_be_hidden()

    accented = PLAIN + ". Reunión"
    page.locator("#text-en").press_sequentially(". Reunión")  # typed, key by key
    expect(page.locator("#text-en")).to_have_value(accented)
    expect(page.locator("#encoding-en")).to_have_text("UCS-2")
    expect(page.locator("#chars-en")).to_have_text(str(len(accented)))
    expect(page.locator("#ucs2-en")).to_be_visible()
    expect(page.locator("#ucs2chars-en code")).to_have_text(["ó"])
    expect(page.locator("#counter-en")).to_have_class(re.compile(r"\bucs2\b"))
    expect(page.locator("#fixinfo-en")).to_contain_text("ó → o")
    shot(page, "compose")

    page.click("#fix-en")
    expect(page.locator("#text-en")).to_have_value(PLAIN + ". Reunion")
    expect(page.locator("#encoding-en")).to_have_text("GSM-7")
    expect(page.locator("#chars-en")).to_have_text(str(len(accented)))
    expect(page.locator("#ucs2-en")).to_be_hidden()
    expect(page.locator("#fix-en")).to_be_hidden()

    page.select_option("#place", "Zomba")
    expect(page.locator("#audience-count")).to_have_text("3")
    page.select_option("#place", "Blantyre")
    expect(page.locator("#audience-count")).to_have_text("1")
    page.select_option("#place", "Karonga")
    expect(page.locator("#audience-count")).to_have_text("0")


# --------------------------------------------------------------------------- 4. preview and launch


def compose_for_zomba(page: Page, base: str, recipients: int) -> None:
    """Write the alert for Zomba and go on to its preview."""
    page.goto(base + "/broadcasts/new")
    page.fill("#text-en", TEXT)
    page.select_option("#place", "Zomba")
    expect(page.locator("#audience-count")).to_have_text(str(recipients))
    page.click("#preview-button")
    expect(page).to_have_url(re.compile(r"/broadcasts/\d+$"))


def launch_from_the_preview(page: Page, recipients: int) -> str:
    """Check the preview, tick the box and launch; return the progress page's URL."""
    expect(page.locator("#broadcast-status")).to_have_text("draft")
    expect(page.locator("#preview-recipients")).to_have_text(str(recipients))
    expect(page.locator("#preview-en")).to_contain_text("GSM-7")
    shot(page, "preview")
    page.check("#launch-confirm")
    page.click("#launch-button")
    expect(page.locator(".flash.ok")).to_have_text(f"Launched: sending to {recipients} supporter(s).")
    expect(page.locator("#progress")).to_be_visible()
    expect(page.locator("#progress-recipients")).to_have_text(str(recipients))
    return page.url


def expect_done_without_reload(page: Page, url: str, recipients: int, timeout: float) -> None:
    """The progress page reaches done by itself: same document (the marker survives), same URL."""
    expect(page.locator("#broadcast-status")).to_have_text("done", timeout=timeout)
    expect(page.locator("#count-sent")).to_have_text(str(recipients))
    expect(page.locator("#progress-handled")).to_have_text(str(recipients))
    expect(page.locator("#count-queued")).to_have_text("0")
    expect(page.locator("#progress-note")).to_have_text("Finished.")
    assert page.evaluate("[document.getElementById('progress-overall').value,"
                         " document.getElementById('progress-overall').max]") == [recipients, recipients]
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert page.url == url


def _zomba_supporters(app) -> None:  # type: ignore[no-untyped-def]
    add_supporters(app, [(n, f"Supporter {i}", "Zomba") for i, n in enumerate(ZOMBA)]
                   + [(ELSEWHERE[0], "Maria", "Blantyre"), (ELSEWHERE[1], "Grace", "Zomba")])


def test_preview_launch_and_live_progress(app, auth, live, page: Page) -> None:  # type: ignore[no-untyped-def]
    """The jobs run by work_burst in this (main) thread while the browser, a separate process, polls."""
    _zomba_supporters(app)
    login(page, live.url, auth.user("organizer"))
    compose_for_zomba(page, live.url, 4)
    url = launch_from_the_preview(page, 4)
    page.evaluate("window.__marker = 1")
    expect(page.locator("#progress")).to_have_attribute("data-status", "sending")  # nothing has run yet
    expect(page.locator("#progress-handled")).to_have_text("0")
    change_settings(app, sender_rate=50.0)  # this test watches the page, not the pacing
    with app.app_context():
        queues.work_burst(app.extensions["gateway"].redis)
    expect_done_without_reload(page, url, 4, timeout=10000)
    shot(page, "progress")


def test_embedded_worker_sends_a_launch(worker_app, auth, page: Page) -> None:  # type: ignore[no-untyped-def]
    """As installed without Redis: the web process's own worker thread sends what the console launched."""
    _zomba_supporters(worker_app)
    with worker_app.extensions["gateway"].sessions() as s, s.begin():  # the draft, as compose saves it
        draft = broadcasts.create(s, {"en": TEXT}, place="Zomba", created_by="organizer@example.org")
        s.flush()
        draft_id = draft.id
    email = auth.user("organizer")
    with LiveServer(worker_app) as live:
        login(page, live.url, email)
        page.goto(f"{live.url}/broadcasts/{draft_id}")
        url = launch_from_the_preview(page, 4)
        page.evaluate("window.__marker = 1")
        # Paced at 2 segments/s, four messages cannot all be sent before the page is shown.
        expect(page.locator("#progress")).to_have_attribute("data-status", "sending")
        # Worker poll (1 s) + pacing (1.5 s) + the page's poll (2 s): 7 s is plenty.
        expect_done_without_reload(page, url, 4, timeout=7000)


# --------------------------------------------------------------------------- 5. simulator and reports


def test_report_through_the_simulator_shows_in_the_counts(app, auth, live, page: Page) -> None:  # type: ignore[no-untyped-def]
    login(page, live.url, auth.user("organizer"))
    page.goto(live.url + "/simulator")
    page.evaluate("window.__marker = 1")
    page.fill("#sim-from", "+265990000009")
    page.fill("#sim-text", REPORT)
    page.click("#sim-send")
    expect(page.locator("#sim-last")).to_contain_text(re.compile(r"Thank you\. Report \S+ is recorded"))
    expect(page.locator("#sim-screen .msg")).to_have_count(2)  # one SMS in, one reply out
    expect(page.locator("#sim-screen .msg.mine").first).to_have_text(re.compile(REPORT))
    assert page.evaluate("window.__marker") == 1, "the simulator reloaded the page"
    shot(page, "simulator")

    page.click("header.top nav >> text=Reports")
    expect(page.locator("p.summary")).to_contain_text("1 report:")
    expect(page.locator("p.summary")).to_contain_text("1 did not arrive")
    headers = page.locator("#counts thead th").all_inner_texts()
    assert "clinic" in headers, headers
    zomba = page.locator("#counts tbody tr").filter(has=page.locator("th", has_text="Zomba"))
    expect(zomba).to_have_count(1)
    expect(zomba.locator("td").nth(headers.index("clinic") - 1)).to_have_text("1")
    expect(zomba.locator("td").last).to_have_text("1")
    report_row = page.locator("table.reports tbody tr")
    expect(report_row).to_have_count(1)
    expect(report_row).to_contain_text("nurse absent")
    expect(report_row).to_contain_text("did not arrive")
    shot(page, "reports")


# --------------------------------------------------------------------------- 6. export and audit


def test_export_reports_is_in_the_audit_log(app, auth, live, page: Page) -> None:  # type: ignore[no-untyped-def]
    phone = Phone(app)
    assert phone.send("+265990000010", REPORT)[0].startswith("Thank you. Report")  # anonymous
    email = auth.user("admin")
    login(page, live.url, email)
    page.goto(live.url + "/reports")
    with page.expect_download() as info:
        page.click("text=Download all as CSV")
    download = info.value
    assert re.fullmatch(r"reports-\d{4}-\d{2}-\d{2}\.csv", download.suggested_filename)
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0] == ",".join(csvio.REPORT_COLUMNS) and len(lines) == 2, lines
    assert ",Zomba,clinic," in lines[1] and "nurse absent" in lines[1] and "+265" not in text

    page.click("header.top nav >> text=Audit log")
    expect(page).to_have_url(live.url + "/audit")
    event = page.locator("table.audit tbody tr").filter(has_text="export.reports")
    expect(event).to_have_count(1)
    expect(event.locator("td").nth(1)).to_have_text(email)
    expect(event.locator("td").nth(3)).to_contain_text("count: 1")
    shot(page, "audit")


# --------------------------------------------------------------------------- 7. screenshots


def test_main_pages_render_on_desktop_and_phone(app, auth, live, page: Page) -> None:  # type: ignore[no-untyped-def]
    join(app, "+265991110001", "Chikondi", "Zomba")
    Phone(app).send("+265991110001", "When is the next meeting in Zomba?")  # nothing handles it: inbox
    add_supporters(app, [("+265991110002", "Grace", "Blantyre")])
    login(page, live.url, auth.user("organizer"))
    pages = {"dashboard": ("/", "Dashboard"), "supporters": ("/supporters", "Supporters"),
             "inbox": ("/inbox", "Inbox"), "flows": ("/flows", None), "simulator": ("/simulator", "Simulator")}
    for name, (path, heading) in pages.items():
        response = page.goto(live.url + path)
        assert response is not None and response.status == 200, (path, response and response.status)
        if heading:
            expect(page.locator("h1")).to_have_text(heading)
        assert no_horizontal_scroll(page) <= 0, f"{path} is wider than the window"
        shot(page, name)
    page.goto(live.url + "/")
    expect(page.locator("#active-count")).to_have_text("2")
    page.goto(live.url + "/inbox")
    expect(page.locator("ol.inbox")).to_contain_text("When is the next meeting in Zomba?")

    page.set_viewport_size({"width": 375, "height": 740})
    for name, path in (("simulator-phone", "/simulator"), ("dashboard-phone", "/")):
        page.goto(live.url + path)
        expect(page.locator("h1")).to_be_visible()
        assert no_horizontal_scroll(page) <= 0, f"{path} is wider than a 375 px phone"
        shot(page, name)
    page.goto(live.url + "/simulator")
    send = page.locator("#sim-send").bounding_box()
    text = page.locator("#sim-text").bounding_box()
    assert send and text and text["x"] + text["width"] <= send["x"] + 1, (text, send)  # side by side, not on top
    assert send["x"] + send["width"] <= 375, send
