"""Retention: message bodies and conversation answers are kept only as long as the work needs."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from gateway.models import Conversation, Message


@dataclass(frozen=True)
class Purged:
    messages: int
    conversations: int


def purge(session: Session, before: datetime) -> Purged:
    """Forget message bodies and closed conversations' answers older than `before`; keep the rows."""
    messages = session.execute(update(Message).where(Message.created_at < before, Message.body.is_not(None),
                                                     Message.status.not_in(("queued", "sending", "inline")))
                               .values(body=None)).rowcount or 0
    conversations = session.execute(update(Conversation).where(
        Conversation.closed_at.is_not(None), Conversation.closed_at < before).values(answers={})).rowcount or 0
    return Purged(messages, conversations)
