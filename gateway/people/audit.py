"""The audit log: append-only records of logins, exports, broadcasts and role changes."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gateway.models import AuditEvent, utcnow


def record(session: Session, actor: str, action: str, **detail: Any) -> None:
    """Add one audit event to the caller's transaction."""
    session.add(AuditEvent(at=utcnow(), actor=actor, action=action, detail=detail))
