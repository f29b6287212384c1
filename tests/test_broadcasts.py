"""Broadcasts end to end on both stacks: audience, launch, send jobs, preview, cancel, quiet hours, pledges, CLI."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask
from sqlalchemy import func, select

from gateway.core.compose import render
from gateway.core.segments import count_segments
from gateway.models import Broadcast, Contact, Message, Pledge, utcnow
from gateway.outbound import broadcasts, jobs, outbox, queues
from gateway.people.contacts import number_is
from tests import helpers
from tests.conftest import make_stack_app
from tests.helpers import add, join, launch, queued_ids, rows, sent, svc, work
from tests.transcript import Phone

PRICES = {"MW": 0.1, "*": 0.05}
THANKS = "Thank you! Your pledge is counted. Together we are heard."
HINT = "Sorry, we did not understand. Text JOIN to join, REPORT to report a service, HELP for help."
STOPPED = "You will get no more messages from Our Network. Text START to join again."
WELCOME_BACK = "Welcome back to Our Network. You will get our alerts again. Text STOP to end, HELP for help."
TEXTS = {
    "en": "Hello {name}, the clinic in {place} has no nurse. Come to the boma on Friday!",
    "ny": "Moni {name}, chipatala cha ku {place} chilibe namwino. Bwerani Lachisanu!",
    "es": "Hola {name}, la clinica de {place} no tiene enfermera. ¡Venga el viernes!",
}


def mw(i: int) -> str:
    """A valid Malawian mobile number."""
    return f"+2659912345{i:02d}"


def hn(i: int) -> str:
    """A valid Honduran mobile number."""
    return f"+504991234{i:02d}"


# --------------------------------------------------------------------------- helpers


def create(app: Flask, texts: dict[str, str] | None = None, **options: Any) -> int:
    """A draft broadcast (the clinic alert unless other texts are given); return its id."""
    return helpers.create(app, texts or {"en": TEXTS["en"]}, **options)


def progress(app: Flask, bid: int) -> dict[str, Any]:
    with svc(app).sessions() as s:
        return broadcasts.progress(s, bid)


def last_inbound(app: Flask, number: str) -> Message:
    with svc(app).sessions() as s:
        return s.scalars(select(Message).join(Contact, Contact.id == Message.contact_id).where(
            number_is(s, number), Message.direction == "in").order_by(Message.id.desc())).first()


def pledges(app: Flask) -> list[tuple[int, int, str | None]]:
    with svc(app).sessions() as s:
        return sorted(s.execute(select(Pledge.broadcast_id, Pledge.contact_id, Pledge.place)).tuples())


def cli(app: Flask, *args: str) -> Result:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result


# --------------------------------------------------------------------------- audience and sending


def test_segment_gets_one_alert_each_in_their_language(stack_app: Flask) -> None:
    """Zomba's active consenting contacts get exactly one alert each, in their language, merged."""
    app = stack_app
    join(app, mw(1), "Chikondi", "zomba", "1")                      # en, through the real JOIN flow
    add(app, mw(2), name="Grace", language="ny")
    add(app, mw(3), name="Ana", language="es")
    add(app, mw(4), name=None, language="fr")                      # no text in French: the default
    add(app, mw(5), name="Stopper")
    assert Phone(app).send(mw(5), "STOP")                          # opted out through the inbound path
    add(app, mw(6), name="Never", consent=False)                   # imported, never consented
    add(app, mw(7), name="Blantyre Person", place="Blantyre")      # another place
    add(app, mw(8), name="Blocked", status="blocked")

    bid = create(app, TEXTS, place="Zomba")
    ids = launch(app, bid)
    assert len(ids) == 4
    work(app)

    assert sorted(sent(app)) == [
        (mw(1), "Hello Chikondi, the clinic in Zomba has no nurse. Come to the boma on Friday!"),
        (mw(2), "Moni Grace, chipatala cha ku Zomba chilibe namwino. Bwerani Lachisanu!"),
        (mw(3), "Hola Ana, la clinica de Zomba no tiene enfermera. ¡Venga el viernes!"),
        (mw(4), "Hello, the clinic in Zomba has no nurse. Come to the boma on Friday!"),
    ]
    p = progress(app, bid)
    assert (p["status"], p["recipients"], p["counts"]["sent"], p["counts"]["queued"]) == ("done", 4, 4, 0)

    work(app)  # a second worker pass finds nothing to do
    with app.app_context():
        again = jobs.send_batch(ids)  # nor does a job that runs twice
    assert again["sent"] == 0
    assert len(sent(app)) == 4


def test_a_send_batch_reads_no_tags(stack_app: Flask) -> None:
    """Tagged recipients are sent their alert without their tags being read (a SELECT a batch)."""
    app = stack_app
    add(app, mw(1), tags=("health",))
    add(app, mw(2), tags=("health", "water"))
    ids = launch(app, create(app, TEXTS, place="Zomba"), enqueue=False)
    with helpers.statements(app) as seen, app.app_context():
        assert jobs.send_batch(ids)["sent"] == 2
    assert seen and not any("FROM contact_tags" in s for s in seen), seen


def test_language_and_tag_filters(stack_app: Flask) -> None:
    """A language or tag filter narrows the audience; filters combine with the place."""
    app = stack_app
    add(app, mw(1), language="en", tags=("health",))
    add(app, mw(2), language="ny", tags=("health", "water"))
    add(app, mw(3), language="ny")
    add(app, mw(4), language="en", tags=("health",), place="Blantyre")
    add(app, mw(5), language="es", tags=("water",))

    def audience(**filters: Any) -> set[str]:
        bid = create(app, TEXTS, **filters)
        launch(app, bid, enqueue=False)
        return set(rows(app, bid))

    assert audience(language="ny") == {mw(2), mw(3)}
    assert audience(tag="Health") == {mw(1), mw(2), mw(4)}  # tags match whatever the case typed
    assert audience(tag="health", place="Zomba") == {mw(1), mw(2)}
    assert audience(tag="water", language="es") == {mw(5)}
    assert audience(tag="farming") == set()


def test_launching_twice_is_refused(stack_app: Flask) -> None:
    """A launched broadcast cannot be launched again; the first rows stay as they were."""
    app = stack_app
    add(app, mw(1))
    add(app, mw(2))
    bid = create(app, place="Zomba")
    first = launch(app, bid, enqueue=False)
    with pytest.raises(broadcasts.BroadcastError, match="already sending"):
        launch(app, bid, enqueue=False)
    assert queued_ids(app, bid) == first and len(first) == 2


def test_outbox_rows_are_unique_per_broadcast_and_contact(stack_app: Flask) -> None:
    """Even a launch that slips past the status check cannot write a second row for a contact."""
    app = stack_app
    add(app, mw(1))
    add(app, mw(2))
    bid = create(app, place="Zomba")
    launch(app, bid, enqueue=False)
    with svc(app).sessions() as s, s.begin():  # as a concurrent launch would see it
        s.get(Broadcast, bid).status = "draft"
    with pytest.raises(sa.exc.IntegrityError):
        launch(app, bid, enqueue=False)
    with svc(app).sessions() as s:
        per_contact = s.execute(select(Message.contact_id, func.count()).where(Message.broadcast_id == bid)
                                .group_by(Message.contact_id)).all()
    assert sorted(n for _, n in per_contact) == [1, 1]


# --------------------------------------------------------------------------- preview


def test_preview_counts_recipients_segments_after_merge_and_cost(stack_app: Flask) -> None:
    """Per language: recipients, encoding and segments with the longest name; cost by country."""
    app = stack_app
    en = "Dear {name}, " + "w" * (150 - len("Dear, "))   # 150 GSM-7 characters without a name
    assert count_segments(render(en, None, None)).segments == 1
    ny = "Tikumane ku {place} Lachisanu ą"
    es = "“Vamos” a la alcaldía de {place} el viernes. ¡Su voz cuenta más! Responda SI para unirse hoy."
    add(app, mw(1), name="Chikondi", language="en")
    add(app, mw(2), name="Chikondi Nyirenda-Banda Phiri", language="en")  # 29 characters
    add(app, hn(1), name="Ana", language="fr", place="Choluteca")          # no French text: English
    add(app, mw(3), name="Grace", language="ny")
    add(app, hn(2), name="Ana", language="es", place="Choluteca")
    add(app, hn(3), name="Rosa", language="es", place="Choluteca")
    add(app, mw(4), name="Stopped", language="en", status="stopped")      # not in the audience
    bid = create(app, {"en": en, "ny": ny, "es": es})
    with svc(app).sessions() as s:
        p = broadcasts.preview(s, s.get(Broadcast, bid), PRICES)

    by_lang = {t.language: t for t in p.texts}
    assert p.recipients == 6
    assert (by_lang["en"].recipients, by_lang["en"].encoding, by_lang["en"].segments) == (3, "GSM-7", 2)
    assert (by_lang["ny"].recipients, by_lang["ny"].encoding, by_lang["ny"].segments) == (1, "UCS-2", 1)
    assert by_lang["ny"].ucs2_chars == ("ą",)
    assert (by_lang["es"].recipients, by_lang["es"].encoding, by_lang["es"].segments) == (2, "UCS-2", 2)
    assert set(by_lang["es"].ucs2_chars) == {"“", "”", "í", "á"}
    assert by_lang["es"].suggestion is not None and by_lang["es"].suggestion_segments == 1
    assert by_lang["en"].suggestion is None
    # MW: 2 en x 2 + 1 ny x 1 = 5 segments; HN: 1 en x 2 + 2 es x 2 = 6 segments.
    assert p.total_segments == 11
    assert p.by_country == {"MW": 5, "HN": 6}
    assert p.estimated_cost == pytest.approx(5 * 0.1 + 6 * 0.05)
    with svc(app).sessions() as s:
        assert s.get(Broadcast, bid).status == "draft"  # a preview launches nothing
        assert s.scalar(select(func.count()).select_from(Message)) == 0


def test_preview_counts_a_name_that_forces_ucs2(stack_app: Flask) -> None:
    """A recipient named 'María' gets a UCS-2 text; the preview's worst case says so."""
    app = stack_app
    text = "Hola {name}, " + "v" * 120
    add(app, hn(1), name="María", language="es", place="Choluteca")
    bid = create(app, {"en": "Hello {name}", "es": text})
    launch(app, bid, enqueue=False)
    [row] = rows(app, bid).values()
    assert (row.encoding, row.segments) == ("UCS-2", 2)  # what launch actually writes
    with svc(app).sessions() as s:
        p = broadcasts.preview(s, s.get(Broadcast, bid), PRICES)
    es = next(t for t in p.texts if t.language == "es")
    assert (es.encoding, es.segments) == ("UCS-2", 2)


# --------------------------------------------------------------------------- stop and cancel


def test_stop_between_launch_and_send_is_honoured(stack_app: Flask) -> None:
    """A contact who texts STOP after the launch is skipped when the job runs."""
    app = stack_app
    add(app, mw(1), name="Stays")
    add(app, mw(2), name="Leaves")
    phone = Phone(app)
    phone.run(f"""
        @ launch to Zomba: Hello {{name}}, the clinic in {{place}} has no nurse. Come to the boma on Friday!
        {mw(2)} > STOP
        {mw(2)} < {STOPPED}
        @ worker
        {mw(1)} < Hello Stays, the clinic in Zomba has no nurse. Come to the boma on Friday!
        {mw(2)} <
    """)
    [bid] = phone.broadcasts

    assert [to for to, _ in sent(app)] == [mw(1)]
    r = rows(app, bid)
    assert (r[mw(1)].status, r[mw(2)].status, r[mw(2)].error_code) == ("sent", "skipped", "stopped")
    p = progress(app, bid)
    assert (p["status"], p["counts"]["sent"], p["counts"]["skipped"]) == ("done", 1, 1)


def test_cancel_after_launch_sends_nothing(stack_app: Flask) -> None:
    """Cancelled before its jobs run: no text goes out, every row and the broadcast are cancelled."""
    app = stack_app
    for i in range(3):
        add(app, mw(i))
    bid = create(app, place="Zomba")
    launch(app, bid)
    with svc(app).sessions() as s, s.begin():
        assert broadcasts.cancel(s, s.get(Broadcast, bid)) == 3
    work(app)

    assert sent(app) == []
    assert {m.status for m in rows(app, bid).values()} == {"cancelled"}
    p = progress(app, bid)
    assert (p["status"], p["counts"]["cancelled"], p["counts"]["sent"]) == ("cancelled", 3, 0)


def test_cancel_command(stack_app: Flask) -> None:
    """`broadcast cancel ID` stops what was not sent and says how much."""
    app = stack_app
    add(app, mw(1))
    add(app, mw(2))
    bid = create(app, place="Zomba")
    launch(app, bid)
    result = cli(app, "broadcast", "cancel", str(bid))
    assert result.stdout.strip() == f"broadcast {bid} cancelled; 2 message(s) will not be sent"
    work(app)
    assert sent(app) == []
    assert progress(app, bid)["status"] == "cancelled"
    missing = app.test_cli_runner().invoke(args=["broadcast", "cancel", str(bid + 100)])
    assert missing.exit_code != 0 and f"no broadcast {bid + 100}" in missing.output


# --------------------------------------------------------------------------- quiet hours


@pytest.fixture
def quiet_app(db_url: str, redis_url: str | None, tmp_path: Path) -> Iterator[Flask]:
    """The stack app with quiet hours 21:00-07:00 in each recipient's local time."""
    app = make_stack_app(db_url, redis_url, tmp_path, QUIET_HOURS="21:00-07:00")
    yield app
    svc(app).engine.dispose()


def clock(app: Flask, when: datetime) -> outbox.Outbox:
    """The app's outbox with its clock fixed at `when` (naive UTC)."""
    return dataclasses.replace(svc(app).outbox(), now=lambda: when)


def test_quiet_hours_hold_until_morning_in_each_recipients_time(quiet_app: Flask) -> None:
    """22:30 in Zomba: held until 07:00 there (05:00 UTC); 14:30 in Choluteca: sent at once."""
    app = quiet_app
    add(app, mw(1), name="Zomba Night")
    add(app, hn(1), name="Choluteca Day", language="es", place="Choluteca")
    bid = create(app, TEXTS)
    ids = launch(app, bid, enqueue=False)

    result = outbox.send_batch(clock(app, datetime(2026, 11, 23, 20, 30)), ids)
    assert (result.sent, result.held) == (1, 1)
    assert [to for to, _ in sent(app)] == [hn(1)]
    held = rows(app, bid)[mw(1)]
    assert (held.status, held.send_after, held.claimed_at) == ("queued", datetime(2026, 11, 24, 5, 0), None)
    assert queues.get_queue(svc(app).redis).scheduled_job_registry.count == 1  # a job waits for the morning
    assert progress(app, bid)["status"] == "sending"

    early = outbox.send_batch(clock(app, datetime(2026, 11, 24, 4, 59, 59)), ids)
    assert (early.sent, early.held) == (0, 0)  # not due yet: not even claimed
    morning = outbox.send_batch(clock(app, datetime(2026, 11, 24, 5, 0)), ids)  # 07:00 in Zomba
    assert morning.sent == 1
    assert sorted(to for to, _ in sent(app)) == sorted([hn(1), mw(1)])
    assert progress(app, bid)["status"] == "done"


def test_urgent_broadcast_ignores_quiet_hours(quiet_app: Flask) -> None:
    """An urgent alert goes out at 22:30 local; an ordinary one waits for 08:00."""
    app = quiet_app
    add(app, mw(1), name="Chikondi")
    urgent = launch(app, create(app, {"en": "URGENT: clinic closed"}, urgent=True), enqueue=False)
    normal = launch(app, create(app, {"en": "Meeting on Friday"}), enqueue=False)

    night = clock(app, datetime(2026, 11, 23, 20, 30))
    assert outbox.send_batch(night, urgent).sent == 1
    assert outbox.send_batch(night, normal).held == 1
    assert sent(app) == [(mw(1), "URGENT: clinic closed")]
    assert outbox.send_batch(clock(app, datetime(2026, 11, 24, 6, 0)), normal).sent == 1
    assert sent(app)[-1] == (mw(1), "Meeting on Friday")


# --------------------------------------------------------------------------- pledges


ALERT = "Will you come to the boma on Friday? Reply YES"


def test_yes_replies_are_counted_once_per_contact_by_place(stack_app: Flask) -> None:
    """'yes' and 'Yes!' are pledges; a second YES is neither counted nor thanked again."""
    app = stack_app
    a = add(app, mw(1), place="Zomba")
    b = add(app, mw(2), place="Blantyre")
    c = add(app, mw(3), place="Zomba")
    add(app, mw(4), place="Zomba")  # got the alert, never replied
    phone = Phone(app)
    phone.run(f"""
        @ alert counting YES: {ALERT}
        {mw(1)} < {ALERT}
        {mw(2)} < {ALERT}
        {mw(3)} < {ALERT}
        {mw(4)} < {ALERT}
        {mw(1)} > yes
        {mw(1)} < {THANKS}
        {mw(2)} > Yes!
        {mw(2)} < {THANKS}
        {mw(3)} > YES
        {mw(3)} < {THANKS}
        # counted once, thanked once
        {mw(1)} > YES
        {mw(1)} <
    """)
    [bid] = phone.broadcasts
    assert last_inbound(app, mw(1)).handled_by == "pledge"

    assert pledges(app) == sorted([(bid, a, "Zomba"), (bid, b, "Blantyre"), (bid, c, "Zomba")])
    p = progress(app, bid)
    assert (p["pledges"], p["pledges_by_place"], p["reply_keyword"]) == (3, {"Zomba": 2, "Blantyre": 1}, "YES")


def test_yes_from_someone_who_got_no_alert_goes_to_the_inbox(stack_app: Flask) -> None:
    """A YES from a supporter outside the alert's audience is an inbox message, not a pledge."""
    app = stack_app
    add(app, mw(1), place="Zomba")
    add(app, mw(2), place="Blantyre")
    Phone(app).run(f"""
        @ alert to Zomba counting YES: {ALERT}
        {mw(1)} < {ALERT}
        {mw(2)} <
        {mw(2)} > YES
        {mw(2)} < {HINT}
    """)
    msg = last_inbound(app, mw(2))
    assert (msg.handled_by, msg.inbox_status) == ("inbox", "open")
    assert pledges(app) == []


def test_yes_to_an_alert_that_was_cancelled_before_it_reached_them(stack_app: Flask) -> None:
    """A supporter whose alert was cancelled before it was sent did not receive it: YES goes to the inbox."""
    app = stack_app
    add(app, mw(1), place="Zomba")
    bid = create(app, {"en": "Will you come on Friday? Reply YES"}, reply_keyword="YES")
    launch(app, bid)
    with svc(app).sessions() as s, s.begin():
        broadcasts.cancel(s, s.get(Broadcast, bid))
    work(app)
    assert sent(app) == [] and rows(app, bid)[mw(1)].status == "cancelled"
    assert Phone(app).send(mw(1), "YES") == [HINT]
    assert pledges(app) == []


def test_yes_after_the_pledge_window_is_not_a_pledge(stack_app: Flask) -> None:
    """With a one-hour window, YES after 59 minutes is a pledge and after 61 minutes is not."""
    app = stack_app
    on_time = add(app, mw(1))
    add(app, mw(2))
    phone = Phone(app)
    phone.run(f"""
        @ alert counting YES within 1h: Will you come on Friday? Reply YES
        {mw(1)} < Will you come on Friday? Reply YES
        {mw(2)} < Will you come on Friday? Reply YES
        ~ 59m
        {mw(1)} > YES
        {mw(1)} < {THANKS}
        ~ 2m
        {mw(2)} > YES
        {mw(2)} < {HINT}
    """)
    [bid] = phone.broadcasts
    assert last_inbound(app, mw(2)).handled_by == "inbox"
    assert pledges(app) == [(bid, on_time, "Zomba")]


def test_pledge_window_of_a_scheduled_alert_starts_when_it_is_sent(stack_app: Flask) -> None:
    """An alert scheduled 2 hours ahead with a 1-hour window still counts a YES 10 minutes after it arrives."""
    app = stack_app
    add(app, mw(1))
    launched = utcnow()
    bid = create(app, {"en": "Will you come on Friday? Reply YES"}, reply_keyword="YES",
                 send_at=launched + timedelta(hours=2))
    with svc(app).sessions() as s, s.begin():
        s.get(Broadcast, bid).pledge_window_hours = 1
    ids = launch(app, bid, enqueue=False)
    assert outbox.send_batch(clock(app, launched + timedelta(hours=2)), ids).sent == 1
    assert Phone(app, now=launched + timedelta(hours=2, minutes=10)).send(mw(1), "YES") == [THANKS]


def test_yes_from_a_stopped_recipient_restarts_them_and_is_no_pledge(stack_app: Flask) -> None:
    """A recipient who stopped and then texts YES is welcomed back; no pledge is counted."""
    app = stack_app
    add(app, mw(1))
    phone = Phone(app)
    phone.run(f"""
        @ alert counting YES: {ALERT}
        {mw(1)} < {ALERT}
        {mw(1)} > STOP
        {mw(1)} < {STOPPED}
        {mw(1)} > YES
        {mw(1)} < {WELCOME_BACK}
    """)
    [bid] = phone.broadcasts
    assert last_inbound(app, mw(1)).handled_by == "start"
    assert pledges(app) == [] and progress(app, bid)["pledges"] == 0
    with svc(app).sessions() as s:
        assert s.scalar(select(Contact.status).where(number_is(s, mw(1)))) == "active"


# --------------------------------------------------------------------------- command line


def test_send_then_status_commands(stack_app: Flask, redis_url: str | None) -> None:
    """`broadcast send` launches (and sends itself when embedded); `broadcast status --json` reports it."""
    app = stack_app
    add(app, mw(1), name="Chikondi")
    add(app, mw(2), name="Grace", language="ny")
    add(app, mw(3), place="Blantyre")
    result = cli(app, "broadcast", "send", "--text", "Hello {name}, meet at {place} boma Friday.",
                 "--translation", "ny=Moni {name}, tikumane ku {place} Lachisanu.", "--place", "zomba")
    [bid] = [int(line) for line in result.stdout.splitlines() if line.isdigit()]  # the id, among sends
    assert "2 recipients, 2 segments" in result.output

    if redis_url is None:
        assert len(sent(app)) == 2  # embedded: the command ran the jobs itself
    else:
        assert sent(app) == []      # a real Redis: the command only enqueued; a worker sends
        work(app)
    assert sorted(sent(app)) == [(mw(1), "Hello Chikondi, meet at Zomba boma Friday."),
                                 (mw(2), "Moni Grace, tikumane ku Zomba Lachisanu.")]

    status = json.loads(cli(app, "broadcast", "status", str(bid), "--json").stdout)
    assert (status["id"], status["status"], status["recipients"]) == (bid, "done", 2)
    assert status["counts"]["sent"] == 2 and status["counts"]["queued"] == 0
    text = cli(app, "broadcast", "status", str(bid)).stdout
    assert f"broadcast {bid}: done, 2 recipients" in text and "sent: 2" in text
