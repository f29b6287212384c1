"""Property-based: under load or not, STOP wins at once and every text is handled in the order sent.

Three supporters text STOP, START, HELP (in every language the flows know) and ordinary words, each
text taken inline or stored for a worker (the process under load, core/pressure.py) at random;
between texts an alert is launched and sent at once, or the workers run. Whatever the order:
- an alert reaches a supporter exactly when their last STOP or START, as received, was a START
  (a STOP stored for a worker stops the outbox at once: Contact.stop_pending_at);
- once the workers have run, every text is handled, in the order it came, no contact is left
  stop-pending, and each one's status is what their last STOP or START said.

Examples per database: STOP_EXAMPLES (default 40).
"""
from __future__ import annotations

import itertools
import os

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gateway.models import Contact, Message
from gateway.people import contacts
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import add, create, launch, send, svc, work
from tests.test_store_and_ack import post

EXAMPLES = int(os.environ.get("STOP_EXAMPLES", "40"))
_runs = itertools.count(1)
ORDINARY = ["hello", "Zomba", "1", "the clinic did not come"]


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_stop_wins_at_once_and_texts_keep_their_order_whichever_path_takes_them(
        twilio_app: Flask, fake_twilio: FakeTwilio, data: st.DataObject) -> None:
    gw = svc(twilio_app)
    fs = gw.flows
    stops, starts = sorted(fs.system_words("stop")), sorted(fs.system_words("start"))
    run = next(_runs)
    tag = f"run{run}"
    senders = [f"+26599{run:03d}{i:04d}" for i in range(3)]
    for number in senders:
        add(twilio_app, number, tags=(tag,))
    stopped = dict.fromkeys(senders, False)  # the model: what each one's last STOP or START said
    text = st.tuples(st.sampled_from(senders), st.sampled_from(stops + starts + ["help", *ORDINARY]),
                     st.booleans())
    steps = data.draw(st.lists(st.one_of(text.map(lambda t: ("text", *t)), st.just(("alert",)),
                                         st.just(("work",))), min_size=1, max_size=14))
    for alert_no, step in enumerate(steps):
        if step[0] == "text":
            _, sender, body, under_load = step
            gw.inbound.pressure.forced = under_load
            post(twilio_app, sender, body)
            if body in stops or body in starts:
                stopped[sender] = body in stops
        elif step[0] == "alert":  # launched and sent before any worker has run
            body = f"Alert {run}.{alert_no}: assembly on Saturday."
            ids = launch(twilio_app, create(twilio_app, {"en": body}, tag=tag), provider="twilio",
                         sender="+15005550006", enqueue=False)
            send(twilio_app, ids)
            reached = {m["to"] for m in fake_twilio.messages if m["body"] == body}
            assert reached == {s for s in senders if not stopped[s]}, (steps, step)
        else:
            work(twilio_app)
    gw.inbound.pressure.forced = False
    work(twilio_app)
    with gw.sessions() as s:
        for number in senders:
            contact = s.scalars(select(Contact).where(contacts.number_is(s, number))).one()
            assert contact.status == ("stopped" if stopped[number] else "active"), (steps, number)
            assert contact.stop_pending_at is None
            texts = s.scalars(select(Message).where(Message.contact_id == contact.id, Message.direction == "in")
                              .order_by(Message.id)).all()
            assert all(m.handled_at is not None for m in texts), steps
            handled = [m.handled_at for m in texts if m.handled_at is not None]
            assert handled == sorted(handled), steps  # handled in the order they came
