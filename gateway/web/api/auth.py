"""Who is calling: per-user bearer tokens, acting with their account's role."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from gateway.db import get_session
from gateway.people import accounts
from gateway.web.api.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Caller:
    """The account a token belongs to (plain values: they outlive a rollback)."""

    id: int
    email: str
    role: str

    @property
    def actor(self) -> str:
        """The caller as the audit log names it."""
        return f"api:{self.email}"[:254]  # AuditEvent.actor's size


def caller() -> Caller:
    """The account whose token this request carries (after `requires`)."""
    return g.api_caller  # type: ignore[no-any-return]


def requires(role: str) -> Callable[[F], F]:
    """The view needs a valid bearer token whose account has `role` (viewer < organizer < admin)."""
    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise ApiError(401, "unauthorized",
                               "This needs an API token: send the header 'Authorization: Bearer <token>'.",
                               headers={"WWW-Authenticate": 'Bearer realm="api"'})
            user = accounts.user_for_token(get_session(), token)
            if user is None:
                raise ApiError(401, "invalid_token",
                               "The API token is not valid: it is wrong, was replaced, or its account is disabled.",
                               headers={"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'})
            if not accounts.can(user, role):
                raise ApiError(403, "forbidden",
                               f"This needs the {role} role or higher; the token's account is a {user.role}.")
            g.api_caller = Caller(user.id, user.email, user.role)
            return view(*args, **kwargs)
        wrapped.required_role = role  # type: ignore[attr-defined]  # tests/test_security.py looks for it
        return wrapped  # type: ignore[return-value]
    return decorator
