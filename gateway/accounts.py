"""Organizer accounts: passwords, roles, API tokens, and the failed-login throttle."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from gateway.models import User, utcnow

ROLES = ("viewer", "organizer", "admin")  # each role can do what the ones before it can
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD = 10


class AccountError(ValueError):
    """An account cannot be created or changed as asked."""


def can(user: User | None, role: str) -> bool:
    """True when the user's role includes `role`."""
    return bool(user and user.active and ROLES.index(user.role) >= ROLES.index(role))


def create_user(session: Session, email: str, role: str, password: str) -> User:
    """A new account; the email is its login."""
    email = email.strip().lower()
    if role not in ROLES:
        raise AccountError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if "@" not in email:
        raise AccountError(f"{email!r} is not an email address")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
    if session.scalar(select(User.id).where(User.email == email)):
        raise AccountError(f"{email} already has an account")
    user = User(email=email, role=role, password_hash=generate_password_hash(password), active=True,
                failed_logins=0)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str, now: datetime | None = None) -> User | None:
    """The user for these credentials, counting failures and locking after too many."""
    now = now or utcnow()
    user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        check_password_hash(generate_password_hash("x"), password)  # same work whether or not the user exists
        return None
    if user.locked_until and user.locked_until > now:
        return None
    if not user.active or not check_password_hash(user.password_hash, password):
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until, user.failed_logins = now + LOCKOUT, 0
        return None
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_token(user: User) -> str:
    """A fresh API token for the user (shown once; only its hash is kept)."""
    token = "gw_" + secrets.token_urlsafe(32)
    user.api_token_hash = _digest(token)
    return token


def user_for_token(session: Session, token: str) -> User | None:
    """The active user holding this API token."""
    if not token:
        return None
    user = session.scalars(select(User).where(User.api_token_hash == _digest(token))).first()
    return user if user and user.active else None


# -- confirming a user's own phone (test sends go only to a confirmed phone) ---------------------

PHONE_CODE_SECONDS = 15 * 60  # a code texted to the phone is good for this long
PHONE_CODE_TRIES = 5  # wrong codes before the code is void and a new one must be sent


def new_phone_code() -> str:
    """A random 6-digit code to text to the phone being confirmed."""
    return f"{secrets.randbelow(10**6):06d}"


def phone_code_mac(secret: str, user_id: int, phone: str, code: str) -> str:
    """What is kept of a code: bound to the user and the phone, useless without the server's secret."""
    return hmac.new(secret.encode(), f"{user_id}|{phone}|{code.strip()}".encode(), hashlib.sha256).hexdigest()


def set_phone(user: User, phone: str) -> None:
    """A new phone for the user: unconfirmed until the code texted to it comes back."""
    user.phone, user.phone_verified_at = phone, None


def confirm_phone(user: User, secret: str, kept_mac: str | None, code: str, now: datetime | None = None) -> bool:
    """Mark the phone confirmed when `code` is the one texted to it (compared in constant time)."""
    if not (user.phone and kept_mac and code.strip().isdigit()):
        return False
    if not hmac.compare_digest(kept_mac, phone_code_mac(secret, user.id, user.phone, code)):
        return False
    user.phone_verified_at = now or utcnow()
    return True
