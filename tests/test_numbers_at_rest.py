"""Phone numbers at rest: encrypted, found by a keyed digest, never stored or logged in plain."""
from __future__ import annotations

import base64
import logging
import os
import re
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select

from gateway import create_app
from gateway.people import contacts
from gateway.settings import ConfigError
from gateway.models import Contact
from gateway.core.vault import NumberKeyError, NumberVault, parse_keys
from tests.conftest import NUMBERS_KEY, PUBLIC_BASE, SECRET_KEY, TWILIO_TOKEN
from tests.test_webhooks import inbound, sms

A = "+265991234567"
KEY_1 = "first-key-for-phone-numbers-0123456789"
KEY_2 = "second-key-for-phone-numbers-987654321"


def forms(number: str) -> list[str]:
    """How a stored number could show up in plain: E.164, without +, local, subscriber digits."""
    digits = number.lstrip("+")
    return [number, digits, "0" + digits[3:], digits[3:]]


def dump(engine: sa.Engine) -> str:
    """Every value of every table, as text (what a stolen database file or backup shows)."""
    out = []
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                out.append(" ".join(str(v) for v in row))
    return "\n".join(out)


# --------------------------------------------------------------------------- the vault, pure


def test_seal_opens_only_with_its_key_and_is_not_deterministic() -> None:
    vault = NumberVault.from_keys([KEY_1])
    sealed = vault.seal(A)
    assert vault.open(sealed) == A and A.lstrip("+") not in sealed
    assert vault.seal(A) != sealed  # a random IV: equal numbers do not look equal at rest
    with pytest.raises(NumberKeyError):
        NumberVault.from_keys([KEY_2]).open(sealed)


def _iv(sealed: str) -> bytes:
    """The IV of a Fernet token (version byte, 8-byte time, then 16 bytes of IV)."""
    return base64.urlsafe_b64decode(sealed)[9:25]


def test_a_seal_is_a_fernet_token_of_the_newest_key_and_never_repeats_its_iv_even_across_a_fork() -> None:
    """seal() builds the token itself (its IV from OpenSSL's generator, see vault.seal): any Fernet of
    the newest key opens it, its time is now, and no two seals share an IV, in one process or after a fork."""
    rotating = NumberVault.from_keys([KEY_2, KEY_1])
    sealed = rotating.seal(A)
    assert Fernet(base64.urlsafe_b64encode(HKDF(algorithm=hashes.SHA256(), length=64, salt=None,
                  info=b"sms-gateway phone numbers v1").derive(KEY_2.encode())[:32])).decrypt(sealed) == A.encode()
    assert abs(rotating.newest.extract_timestamp(sealed) - time.time()) < 60
    with pytest.raises(NumberKeyError):
        NumberVault.from_keys([KEY_1]).open(sealed)  # sealed with the newest key, not the older one
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child seals too, with the generator it inherited
        os.close(read)
        os.write(write, b"".join(_iv(rotating.seal(A)) for _ in range(200)))
        os._exit(0)
    os.close(write)
    here = [_iv(rotating.seal(A)) for _ in range(2000)]
    with os.fdopen(read, "rb") as pipe:
        there = pipe.read()
    os.waitpid(child, 0)
    theirs = [there[i:i + 16] for i in range(0, len(there), 16)]
    assert len(theirs) == 200 and len(set(here)) == 2000 and not set(here) & set(theirs)


def test_digest_is_keyed_and_stable() -> None:
    one, two = NumberVault.from_keys([KEY_1]), NumberVault.from_keys([KEY_2])
    assert one.digest(A) == NumberVault.from_keys([KEY_1]).digest(A)
    assert one.digest(A) != two.digest(A) and one.digest(A) != one.digest("+265991234568")
    assert re.fullmatch(r"[0-9a-f]{64}", one.digest(A))


def test_rotation_reads_old_rows_and_writes_with_the_newest_key() -> None:
    old = NumberVault.from_keys([KEY_1])
    rotating = NumberVault.from_keys([KEY_2, KEY_1])
    sealed = old.seal(A)
    assert rotating.open(sealed) == A
    assert rotating.digests(A) == [NumberVault.from_keys([KEY_2]).digest(A), old.digest(A)]
    resealed, digest = rotating.rekey(sealed)
    assert NumberVault.from_keys([KEY_2]).open(resealed) == A and digest == rotating.digest(A)


@pytest.mark.parametrize("value", ["", "short", f"{KEY_1},tooshort"])
def test_short_keys_are_refused(value: str) -> None:
    with pytest.raises(NumberKeyError):
        parse_keys(value)


# --------------------------------------------------------------------------- in the database


def test_no_plain_number_at_rest_after_join_import_and_api(app, client, runner, tmp_path: Path, auth) -> None:
    inbound(client, sms("JOIN", sender="0991234567"))
    inbound(client, sms("Chikondi", sender=A))
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("number,name,place\n0881234567,Grace,Zomba\n+50499123456,Maria,\n", encoding="utf-8")
    assert runner.invoke(args=["contacts", "import", str(csv_file)]).exit_code == 0
    auth.user("organizer")
    from gateway.people import accounts
    from gateway.models import User

    svc = app.extensions["gateway"]
    with svc.sessions() as s, s.begin():
        api_token = accounts.new_api_token(s.scalars(select(User)).first())
    created = client.post("/api/v1/contacts", json={"number": "0999000111", "name": "Api"},
                          headers={"Authorization": f"Bearer {api_token}"})
    assert created.status_code == 201, created.get_data(as_text=True)

    numbers = [A, "+265881234567", "+50499123456", "+265999000111"]
    with svc.sessions() as s:
        assert sorted(contacts.number_of(c) for c in s.scalars(select(Contact))) == sorted(numbers)
    text = dump(svc.engine)
    for number in numbers:
        for form in forms(number):
            assert form not in text, f"{form} is stored in plain"


def test_lookup_finds_one_contact_whatever_the_format(app, client) -> None:
    for sender in (("0991234567", A, "00265991234567", "265991234567")):
        assert inbound(client, sms("HELP", sender=sender)).status_code == 200
    with app.extensions["gateway"].sessions() as s:
        assert s.scalar(select(sa.func.count()).select_from(Contact)) == 1
        assert contacts.find(s, A) is not None and contacts.find(s, "+265991234568") is None


def test_another_key_can_neither_read_nor_find(app, client, db_url: str, tmp_path: Path) -> None:
    inbound(client, sms("JOIN", sender=A))
    other = create_app({**app.config, "NUMBERS_KEY": KEY_2, "INSTANCE_PATH": str(tmp_path / "other")})
    try:
        with other.extensions["gateway"].sessions() as s:
            assert contacts.find(s, A) is None
            [contact] = s.scalars(select(Contact)).all()
            with pytest.raises(NumberKeyError):
                contacts.number_of(contact)
    finally:
        other.extensions["gateway"].engine.dispose()


def test_rekey_moves_every_number_to_the_new_key(app, client, runner, tmp_path: Path) -> None:
    inbound(client, sms("JOIN", sender=A))
    rotating = create_app({**app.config, "NUMBERS_KEY": f"{KEY_2},{NUMBERS_KEY}"})
    try:
        result = rotating.test_cli_runner().invoke(args=["privacy", "rekey"])
        assert result.exit_code == 0 and result.output.startswith("1 numbers moved"), result.output
    finally:
        rotating.extensions["gateway"].engine.dispose()
    fresh = create_app({**app.config, "NUMBERS_KEY": KEY_2})
    try:
        with fresh.extensions["gateway"].sessions() as s:
            found = contacts.find(s, A)
            assert found is not None and contacts.number_of(found) == A
    finally:
        fresh.extensions["gateway"].engine.dispose()


def test_exports_decrypt(app, client, runner) -> None:
    inbound(client, sms("JOIN", sender="0991234567"))
    result = runner.invoke(args=["contacts", "export"])
    assert result.exit_code == 0 and A in result.output


def test_twilio_sdk_logs_no_number(fake_twilio, caplog: pytest.LogCaptureFixture) -> None:
    """The SDK logs every request's query at INFO (To=+265...); the gateway keeps that out of logs."""
    from datetime import datetime, timedelta, timezone

    from gateway.channels.twilio import TwilioProvider

    caplog.set_level(logging.INFO)  # a production log level; DEBUG shows urllib3's URLs, by design
    provider = TwilioProvider(fake_twilio.account_sid, fake_twilio.auth_token, from_number="+15005550006",
                              api_base_url=fake_twilio.base_url)
    provider.send(A, "hello")
    provider.find_sent(A, datetime.now(timezone.utc) - timedelta(minutes=5))
    assert not any(f in caplog.text for f in (A, A.lstrip("+"), "%2B265991234567"))


# --------------------------------------------------------------------------- configuration


def _base(tmp_path: Path, **extra: object) -> dict[str, object]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}", "REDIS_URL": None, "SECRET_KEY": SECRET_KEY,
            "SMS_PROVIDER": "console", "INSTANCE_PATH": str(tmp_path), "TESTING": True, "NUMBERS_KEY": None,
            **extra}


def test_embedded_default_generates_its_key_once(tmp_path: Path) -> None:
    first = create_app(_base(tmp_path))
    second = create_app(_base(tmp_path))
    assert first.config["NUMBERS_KEY"] == second.config["NUMBERS_KEY"] == (tmp_path / "numbers_key").read_text()
    assert (tmp_path / "numbers_key").stat().st_mode & 0o077 == 0
    for a in (first, second):
        a.extensions["gateway"].engine.dispose()


@pytest.mark.parametrize("extra", [
    {"SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
     "TWILIO_FROM_NUMBER": "+15005550006", "PUBLIC_BASE_URL": PUBLIC_BASE},
    {"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"},
])
def test_shared_deployments_need_an_explicit_key(tmp_path: Path, extra: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="NUMBERS_KEY is required"):
        create_app(_base(tmp_path, **extra))
    assert not (tmp_path / "numbers_key").exists()


def test_a_short_key_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NUMBERS_KEY: key 1 has 5 characters"):
        create_app(_base(tmp_path, NUMBERS_KEY="short"))
