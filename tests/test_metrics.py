"""What operators see: /metrics (Prometheus, behind METRICS_TOKEN), /healthz's degraded list, the log lines."""
from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from gateway.models import Message
from gateway.outbound import jobs
from gateway.outbound.pacing import Pacer
from tests.helpers import add, change_settings, create, launch, svc, work
from tests.test_spool import database_away
from tests.test_webhooks import inbound, sms

TOKEN = "metrics-token-0123456789abcdef"
ZOMBA = ["+265991000001", "+265991000002", "+265991000003"]


@pytest.fixture
def ops_app(stack_app: Flask) -> Flask:
    """The app on both stacks with a metrics token set."""
    change_settings(stack_app, metrics_token=TOKEN)
    return stack_app


def scrape(app: Flask) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics with the token, parsed: (sample name, sorted labels) -> value."""
    response = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for s in family.samples}


def age(app: Flask, seconds: int) -> None:
    """Make every queued message look `seconds` old."""
    from gateway.models import utcnow

    with svc(app).sessions() as s, s.begin():
        s.execute(update(Message).where(Message.status == "queued")
                  .values(created_at=utcnow() - timedelta(seconds=seconds)))


def problems(health: dict, start: str) -> list[str]:  # type: ignore[type-arg]
    """The degraded entries of a /healthz answer that start so (with Redis, "no worker is running" is one too)."""
    return [p for p in health.get("degraded", []) if p.startswith(start)]


def test_metrics_is_off_without_a_token_and_refuses_a_wrong_one(stack_app: Flask) -> None:
    client = stack_app.test_client()
    assert client.get("/metrics").status_code == 404  # METRICS_TOKEN unset: no such page
    change_settings(stack_app, metrics_token=TOKEN)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 401 and "gateway_" not in wrong.get_data(as_text=True)


def test_metrics_show_the_queue_the_sends_and_the_texts_in(ops_app: Flask) -> None:
    for n in ZOMBA:
        add(ops_app, n)
    launch(ops_app, create(ops_app, {"en": "Meet at the clinic"}, place="Zomba"), enqueue=False)
    age(ops_app, 300)
    m = scrape(ops_app)
    assert m[("gateway_queue_waiting_messages", ())] == 3
    assert 299 <= m[("gateway_queue_oldest_waiting_seconds", ())] < 330
    assert m[("gateway_messages_out", (("channel", "console"), ("status", "queued")))] == 3
    assert m[("gateway_up", (("part", "database"),))] == 1 and m[("gateway_up", (("part", "queue"),))] == 1

    with ops_app.app_context():
        jobs.reconcile(force=True)  # enqueues the three: a reconciler action
    work(ops_app)
    assert inbound(ops_app.test_client(), sms("HELP")).status_code == 200
    m = scrape(ops_app)
    assert m[("gateway_queue_waiting_messages", ())] == 0
    assert m[("gateway_queue_oldest_waiting_seconds", ())] == 0
    assert m[("gateway_messages_out", (("channel", "console"), ("status", "sent")))] == 3
    assert m[("gateway_texts_in_total", (("channel", "twilio"),))] == 1
    assert m[("gateway_reconciler_actions_total", (("action", "jobs"),))] == 1
    assert m[("gateway_reconciler_actions_total", (("action", "runs"),))] == 1
    assert m[("gateway_spool_texts", (("state", "kept"),))] == 0


def test_pacing_waits_are_counted_in_redis_for_every_process(ops_app: Flask) -> None:
    # A Pacer on the app's Redis whose sleeps are recorded, not slept: what it waits is fixed by its
    # rate (one slot every 10 s), not by how busy the machine is, so the figure is exact.
    slept: list[float] = []
    pacer = Pacer(svc(ops_app).redis, 0.1, sleep=slept.append)
    before = scrape(ops_app)
    sender = f"metrics-{uuid.uuid4().hex}"
    for _ in range(3):
        pacer.wait(sender, 1)
    after = scrape(ops_app)
    assert len(slept) == 2 and 25 < sum(slept) <= 30  # the 2nd waits ~10 s, the 3rd ~20 s
    key = ("gateway_pacing_waits_total", ())
    assert after[key] - before.get(key, 0) == 2
    seconds = ("gateway_pacing_wait_seconds_total", ())
    assert after[seconds] - before.get(seconds, 0) == pytest.approx(sum(slept), abs=1e-3)


def test_healthz_names_a_stuck_backlog_and_keeps_200(ops_app: Flask) -> None:
    for n in ZOMBA:
        add(ops_app, n)
    launch(ops_app, create(ops_app, {"en": "Meet at the clinic"}, place="Zomba"), enqueue=False)
    client = ops_app.test_client()
    fresh = client.get("/healthz")
    assert fresh.status_code == 200 and not problems(fresh.get_json(), "queue backlog")  # waiting a moment: normal
    age(ops_app, 3600)
    stuck = client.get("/healthz")
    body = stuck.get_json()
    assert stuck.status_code == 200 and body["status"] == "degraded"
    assert body["waiting"]["messages"] == 3 and body["waiting"]["oldest_seconds"] >= 3600
    assert any(p.startswith("queue backlog: 3 messages waiting") for p in body["degraded"])
    assert "+265" not in stuck.get_data(as_text=True)


def test_healthz_names_texts_kept_in_the_spool_while_the_database_is_away(ops_app: Flask) -> None:
    client = ops_app.test_client()
    with database_away(ops_app):
        assert inbound(client, sms("JOIN", ZOMBA[0])).status_code == 200  # kept on disk
        away = client.get("/healthz")
        body = away.get_json()
        assert away.status_code == 503 and body["database"] == "unreachable" and body["spool_kept"] == 1
        assert {"database unreachable", "spool: 1 texts kept while the database was away, not replayed yet"} \
            <= set(body["degraded"])
        assert ZOMBA[0] not in away.get_data(as_text=True)
    assert svc(ops_app).inbound.replay().stored == 1  # as the reconciler does once the database is back
    back = client.get("/healthz")
    assert back.status_code == 200 and not problems(back.get_json(), "spool")


@pytest.mark.servers
def test_healthz_says_no_worker_is_running_with_redis(ops_app: Flask) -> None:
    from rq import Worker

    from gateway.outbound import queues

    body = ops_app.test_client().get("/healthz").get_json()
    assert body["status"] == "degraded" and body["workers"] == 0 and "no worker is running" in body["degraded"]
    w = Worker([queues.get_queue(svc(ops_app).redis)], connection=svc(ops_app).redis)
    w.register_birth()
    try:
        body = ops_app.test_client().get("/healthz").get_json()
        assert body["status"] == "ok" and "degraded" not in body
        assert scrape(ops_app)[("gateway_workers", ())] == 1
    finally:
        w.register_death()


def test_the_reconcilers_summary_is_logged_at_info_with_no_number(stack_app: Flask, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    for n in ZOMBA:
        add(stack_app, n)
    launch(stack_app, create(stack_app, {"en": "Meet at the clinic"}, place="Zomba"), enqueue=False)
    with stack_app.app_context():
        jobs.reconcile(force=True)
    work(stack_app)
    inbound(stack_app.test_client(), sms("JOIN", ZOMBA[0]))
    lines = [r for r in caplog.records if r.name == "gateway.outbound.jobs"]
    assert any(r.levelname == "INFO" and r.getMessage().startswith("reconcile: ") and "3 due" in r.getMessage()
               for r in lines)
    assert caplog.records  # something was logged, and none of it names a supporter
    for n in ZOMBA:
        assert n not in caplog.text and n[1:] not in caplog.text


# --------------------------------------------------------------------------- the dashboard, in words


def dashboard_text(app: Flask) -> str:
    """The dashboard's "Sending" list as a viewer sees it, whitespace folded."""
    from tests.conftest import Auth

    client = app.test_client()
    Auth(app, client).login("viewer")
    html = client.get("/").get_data(as_text=True)
    start = html.index('<ul id="sending">')
    return " ".join(re.sub(r"<[^>]+>", " ", html[start:html.index("</ul>", start)]).split())


def test_the_dashboard_says_how_many_wait_and_for_how_long(stack_app: Flask) -> None:
    assert "No messages waiting." in dashboard_text(stack_app)
    for n in ZOMBA:
        add(stack_app, n)
    launch(stack_app, create(stack_app, {"en": "Meet at the clinic"}, place="Zomba"), enqueue=False)
    age(stack_app, 190)
    words = dashboard_text(stack_app)
    assert "3 messages waiting, the oldest 3 minutes." in words
    age(stack_app, 7300)
    assert "3 messages waiting, the oldest 2 hours: longer than sending them should take." in dashboard_text(stack_app)
    if svc(stack_app).settings.redis_url:
        assert "No worker is running: messages wait until one starts." in dashboard_text(stack_app)
    else:  # the embedded default: the server is the worker
        assert "worker" not in dashboard_text(stack_app)


def test_the_dashboard_counts_texts_kept_while_the_database_was_away(stack_app: Flask) -> None:
    with database_away(stack_app):
        for n in ZOMBA:
            inbound(stack_app.test_client(), sms("JOIN", n))
    # As if this process had just tried to replay them and failed: the page must not replay them first.
    svc(stack_app).inbound._last_replay[0] = time.monotonic() + 60
    words = dashboard_text(stack_app)
    assert "3 texts kept while the database was away, not handled yet." in words
    assert all(n not in words for n in ZOMBA)


def test_the_dashboard_in_chromium_says_what_waits(app: Flask, auth, live, page) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    from tests.test_browser_console import login

    for n in ZOMBA:
        add(app, n)
    launch(app, create(app, {"en": "Meet at the clinic"}, place="Zomba"), enqueue=False)
    age(app, 190)
    login(page, live.url, auth.user("viewer"))
    page.goto(live.url + "/")
    expect(page.locator("#waiting")).to_have_text("3 messages waiting, the oldest 3 minutes.")
    expect(page.locator("#sending")).not_to_contain_text("+265")


def test_a_short_metrics_token_stops_the_start_and_instance_path_comes_from_the_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gateway.settings import ConfigError, Settings

    with pytest.raises(ConfigError, match="METRICS_TOKEN has 5 characters; it needs at least 16"):
        Settings.from_env({"METRICS_TOKEN": "short"}, tmp_path)
    assert Settings.from_env({"METRICS_TOKEN": TOKEN}, tmp_path).metrics_token == TOKEN
    assert TOKEN not in repr(Settings.from_env({"METRICS_TOKEN": TOKEN}, tmp_path))
    assert Settings.from_env({"INSTANCE_PATH": str(tmp_path / "site")}).instance_path == tmp_path / "site"


@pytest.mark.postgres_only
def test_a_count_that_fails_is_omitted_and_flagged_not_scraped_as_zero(db_url: str, redis_url: str | None,
                                                                       tmp_path: Path) -> None:
    import sqlalchemy as sa

    from tests.conftest import make_stack_app
    assert db_url.startswith("postgresql"), "a lock held by another session times the counts out (postgres_only)"
    app = make_stack_app(db_url, redis_url, tmp_path, DB_LOCK_TIMEOUT_MS=200)
    change_settings(app, metrics_token=TOKEN)
    assert inbound(app.test_client(), sms("JOIN")).status_code == 200
    before = scrape(app)
    assert sum(n for k, n in before.items() if k[0] == "gateway_texts_in_total") == 1
    assert before[("gateway_scrape_error", (("part", "database"),))] == 0
    holder = sa.create_engine(db_url)
    with holder.connect() as conn:
        conn.exec_driver_sql("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        during = scrape(app)
        conn.exec_driver_sql("ROLLBACK")
    holder.dispose()
    assert during[("gateway_up", (("part", "database"),))] == 1  # it answers; the counts timed out
    assert during[("gateway_scrape_error", (("part", "database"),))] == 1
    # No sample rather than a zero: Prometheus would read a zero counter as a reset.
    assert not [k for k in during if k[0].startswith(("gateway_texts_in", "gateway_messages_out",
                                                      "gateway_queue_waiting"))]
    assert sum(n for k, n in scrape(app).items() if k[0] == "gateway_texts_in_total") == 1
