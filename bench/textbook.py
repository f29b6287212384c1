"""The textbook fan-out, for comparison: one RQ job per message, one commit per message, and a new
twilio Client (so a new HTTP connection) per send. Same database, same Redis, same fake, same
worker class (RQ's SimpleWorker, as `flask --app app worker` uses), two workers.

    python -m bench.textbook        # a worker on the bench-textbook queue (stop it with SIGTERM)
"""
from __future__ import annotations

import os
from typing import Any

from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

QUEUE = "bench-textbook"
_sessions: Any = None


def _session():  # type: ignore[no-untyped-def]
    global _sessions
    if _sessions is None:  # one engine per worker process: even the textbook does that
        from gateway.settings import database_url
        from gateway.db import make_engine, make_session_factory
        from gateway.core.vault import NumberVault, parse_keys

        _sessions = make_session_factory(make_engine(database_url(os.environ["DATABASE_URL"])),
                                         NumberVault.from_keys(parse_keys(os.environ["NUMBERS_KEY"])))
    return _sessions()


def send_one(message_id: int) -> str:
    """Load the row, build a Twilio client, send, commit the outcome: one message, one job."""
    from twilio.rest import Client

    from gateway.people.contacts import number_of
    from gateway.models import Contact, Message
    from gateway.channels.twilio import _BaseURLHttpClient

    with _session() as session:
        message = session.get(Message, message_id)
        contact = session.get(Contact, message.contact_id)
        client = Client(os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"],
                        http_client=_BaseURLHttpClient(os.environ["TWILIO_API_BASE_URL"], timeout=10))
        sent = client.messages.create(to=number_of(contact), from_=os.environ["TWILIO_FROM_NUMBER"], body=message.body)
        message.status, message.provider_id = "sent", sent.sid
        session.commit()
        return sent.sid


def launch(sessions: Any, redis: Any, broadcast_id: int, recipients: list[tuple[int, str]], text: str,
           sender: str) -> int:
    """Write each outbox row in its own transaction and enqueue its own job; return the count."""
    from gateway.models import Message
    from gateway.core.segments import count_segments

    q = Queue(QUEUE, connection=redis, serializer=JSONSerializer)
    n = 0
    for contact_id, _number in recipients:
        info = count_segments(text)
        with sessions() as session:
            m = Message(direction="out", contact_id=contact_id, broadcast_id=broadcast_id, channel="twilio",
                        sender=sender, medium="sms", body=text, status="queued", encoding=info.encoding,
                        segments=info.segments, attempts=0)
            session.add(m)
            session.commit()
            q.enqueue("bench.textbook.send_one", m.id)
        n += 1
    return n


def main() -> None:
    import redis

    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    SimpleWorker([Queue(QUEUE, connection=connection, serializer=JSONSerializer)], connection=connection,
                 serializer=JSONSerializer).work(burst=False, logging_level="WARNING")


if __name__ == "__main__":
    main()
