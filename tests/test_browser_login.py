"""Logging in, in a real headless Chromium."""
from __future__ import annotations

from tests.browser import shot
from tests.conftest import PASSWORD


def test_login_in_the_browser(app, auth, live, page) -> None:
    email = auth.user("organizer")
    page.goto(live.url + "/")
    assert "/login" in page.url
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert page.locator(".flash.error").is_visible()
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#active-count")
    assert page.locator(".who").inner_text().startswith(email)
    shot(page, "dashboard")
