"""Organizer accounts: passwords, roles, API tokens, and the failed-login throttle."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
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


# Checked against when there is no real hash to check (unknown, locked or inactive account), so every
# attempt costs exactly one password hash and the answer time tells nothing about the account.
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class LoginAttempt:
    """What one login attempt came to: the user when the password was right, and why not otherwise."""

    user: User | None
    account: User | None  # the account the email names, if any
    outcome: str  # ok, wrong, locked (now or already), inactive, unknown
    locked_now: bool = False  # this failure started a lockout


def authenticate(session: Session, email: str, password: str, now: datetime | None = None) -> User | None:
    """The user for these credentials, counting failures and locking after too many."""
    return attempt_login(session, email, password, now).user


def attempt_login(session: Session, email: str, password: str, now: datetime | None = None) -> LoginAttempt:
    """Check the credentials, counting failures and locking after too many; one hash in every case."""
    now = now or utcnow()
    user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
    attempt = _take_attempt(session, user, now) if user is not None else None
    # One hash whatever happens: the real one only when an attempt was granted.
    right = check_password_hash(user.password_hash if user is not None and attempt else _DUMMY_HASH, password)
    if user is None:
        return LoginAttempt(None, None, "unknown")
    if attempt is None:
        return LoginAttempt(None, user, "locked" if user.active else "inactive")
    if not right:
        locked_now = attempt >= MAX_FAILED_LOGINS
        if locked_now:
            session.execute(update(User).where(User.id == user.id)
                            .values(locked_until=now + LOCKOUT, failed_logins=0))
        return LoginAttempt(None, user, "wrong", locked_now)
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    return LoginAttempt(user, user, "ok")


def _take_attempt(session: Session, user: User, now: datetime) -> int | None:
    """Count this attempt as a failure before checking the password; its number, or None when refused.

    One UPDATE ... RETURNING: concurrent attempts cannot both read the same count (PostgreSQL holds
    the row lock until commit, SQLite the write lock), so five guesses is five, however many run at
    once. A right password then sets the count back to zero.
    """
    if not user.active:
        return None
    counted = session.execute(
        update(User).where(User.id == user.id, User.active.is_(True),
                           or_(User.locked_until.is_(None), User.locked_until <= now))
        .values(failed_logins=func.coalesce(User.failed_logins, 0) + 1)
        .returning(User.failed_logins)).scalar_one_or_none()
    return counted


def start_session(user: User) -> None:
    """Give the user a session nonce if they have none (the console session id carries it)."""
    if not user.session_nonce:
        user.session_nonce = secrets.token_hex(16)


def end_sessions(user: User) -> None:
    """End every console session of this user, on every device: the old session ids stop matching."""
    user.session_nonce = secrets.token_hex(16)


def user_for_session(session: Session, session_id: str) -> User | None:
    """The active user a console session id ("<id>:<nonce>") names, if the nonce is still theirs."""
    user_id, _, nonce = session_id.partition(":")
    if not user_id.isdigit() or not nonce:
        return None
    user = session.get(User, int(user_id))
    if user is None or not user.active or not user.session_nonce:
        return None
    return user if hmac.compare_digest(user.session_nonce, nonce) else None


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
