"""Pure: phone numbers at rest. Fernet encrypts them; an HMAC digest finds them without decrypting.

Both keys are derived (HKDF-SHA256) from NUMBERS_KEY, so an operator keeps one secret. A list
of secrets, newest first, rotates: the newest seals and digests new rows, every one still opens
and finds old rows until `privacy rekey` has moved them to the newest.
The derivation must never change: it is how existing databases are read (migration 0004 keeps a
frozen copy of it, and tests/test_migrations.py checks that the two agree).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_KEY_CHARS = 32
_INFO = b"sms-gateway phone numbers v1"


class NumberKeyError(ValueError):
    """A key is unusable, or a stored number cannot be opened with the configured keys."""


def parse_keys(value: str) -> list[str]:
    """NUMBERS_KEY as a list of secrets, newest first; raises NumberKeyError on a short one."""
    keys = [k.strip() for k in value.split(",") if k.strip()]
    if not keys:
        raise NumberKeyError("no key given")
    for i, key in enumerate(keys, 1):
        if len(key) < MIN_KEY_CHARS:
            raise NumberKeyError(f"key {i} has {len(key)} characters; each needs at least {MIN_KEY_CHARS} "
                                 "(generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return keys


def new_key() -> str:
    """A fresh random secret for NUMBERS_KEY."""
    return secrets.token_urlsafe(32)


def _derive(secret: str) -> tuple[Fernet, bytes]:
    material = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(material[:32])), material[32:]


@dataclass(frozen=True)
class NumberVault:
    """Seals, opens and digests phone numbers with the configured keys."""

    fernet: MultiFernet
    digest_keys: tuple[bytes, ...]  # newest first
    newest: Fernet  # the newest key's, which seals (as MultiFernet.encrypt would)

    @classmethod
    def from_keys(cls, keys: Sequence[str]) -> NumberVault:
        """A vault for these secrets, newest first."""
        derived = [_derive(k) for k in keys]
        return cls(MultiFernet([f for f, _ in derived]), tuple(d for _, d in derived), derived[0][0])

    def seal(self, number: str) -> str:
        """The number encrypted with the newest key (random IV: equal numbers seal differently)."""
        # A Fernet token like Fernet.encrypt's, but its IV from OpenSSL's generator (ssl.RAND_bytes: a
        # CSPRNG in this process, reseeded after a fork), not os.urandom. os.urandom is a system call
        # that releases the GIL, and under load each release is a wait for it again among the request
        # threads: a text stored under load is sealed once in its webhook. Any Fernet opens the token.
        return self.newest._encrypt_from_parts(number.encode(), int(time.time()), ssl.RAND_bytes(16)).decode("ascii")

    def open(self, sealed: str) -> str:
        """The number back; NumberKeyError when no configured key opens it."""
        try:
            return self.fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as exc:
            raise NumberKeyError("a stored phone number cannot be opened with NUMBERS_KEY: wrong key?") from exc

    def digest(self, number: str) -> str:
        """The look-up digest of a normalised number under the newest key."""
        return self.digests(number)[0]

    def digests(self, number: str) -> list[str]:
        """The digests under every configured key, newest first (rows not yet rekeyed)."""
        return [hmac.new(k, number.encode(), hashlib.sha256).hexdigest() for k in self.digest_keys]

    def rekey(self, sealed: str) -> tuple[str, str]:
        """A sealed number moved to the newest key: (sealed, digest)."""
        number = self.open(sealed)
        return self.seal(number), self.digest(number)
