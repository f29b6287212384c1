"""phone numbers encrypted at rest, found by a keyed digest

Every contacts.number becomes number_sealed (Fernet) and number_digest (HMAC-SHA256), in
batches, with the keys of NUMBERS_KEY (handed over by `flask db upgrade`, or from the
environment); the downgrade opens them back into plain numbers. Nothing is lost either way:
a row that cannot be converted stops the migration and its transaction rolls back.

Revision ID: 0004
Revises: 0003
"""
import base64
import hashlib
import hmac
import os
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import context, op
from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BATCH = 1000


class _Vault:
    """The key derivation of gateway/core/vault.py as it was when this migration was written.

    Frozen here so that a later change to the application cannot change what this migration
    writes; tests/test_migrations.py checks that the two still agree.
    """

    INFO = b"sms-gateway phone numbers v1"

    def __init__(self, secrets: list[str]) -> None:
        derived = [HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=self.INFO).derive(s.encode())
                   for s in secrets]
        self.fernet = MultiFernet([Fernet(base64.urlsafe_b64encode(m[:32])) for m in derived])
        self.digest_key = derived[0][32:]

    def seal(self, number: str) -> str:
        return self.fernet.encrypt(number.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        return self.fernet.decrypt(sealed.encode("ascii")).decode()

    def digest(self, number: str) -> str:
        return hmac.new(self.digest_key, number.encode(), hashlib.sha256).hexdigest()


def _vault() -> _Vault:
    key = context.config.attributes.get("numbers_key") or os.environ.get("NUMBERS_KEY")
    if not key:
        raise RuntimeError("migration 0004 encrypts phone numbers: set NUMBERS_KEY (or run `flask --app app db "
                           "upgrade`, which uses the gateway's key)")
    secrets = [k.strip() for k in key.split(",") if k.strip()]
    if not secrets:
        raise RuntimeError("migration 0004: NUMBERS_KEY holds no key")
    return _Vault(secrets)


def _convert(select_sql: str, update_sql: str, convert) -> None:  # type: ignore[no-untyped-def]
    """Rewrite every contact in batches of BATCH, in id order."""
    conn = op.get_bind()
    if not conn.execute(sa.text("SELECT 1 FROM contacts LIMIT 1")).first():
        return  # an empty database needs no key
    last = 0
    while rows := conn.execute(sa.text(select_sql), {"last": last, "n": BATCH}).all():
        conn.execute(sa.text(update_sql), [convert(*row) for row in rows])
        last = rows[-1][0]


def upgrade() -> None:
    with op.batch_alter_table('contacts') as batch_op:
        batch_op.add_column(sa.Column('number_digest', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('number_sealed', sa.String(length=255), nullable=True))
    vault = None

    def seal(id_: int, number: str) -> dict:  # type: ignore[type-arg]
        nonlocal vault
        vault = vault or _vault()
        return {"id": id_, "digest": vault.digest(number), "sealed": vault.seal(number)}

    _convert("SELECT id, number FROM contacts WHERE id > :last ORDER BY id LIMIT :n",
             "UPDATE contacts SET number_digest = :digest, number_sealed = :sealed WHERE id = :id", seal)
    with op.batch_alter_table('contacts') as batch_op:
        batch_op.drop_constraint('uq_contacts_number', type_='unique')
        batch_op.drop_column('number')
        batch_op.alter_column('number_digest', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('number_sealed', existing_type=sa.String(length=255), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_contacts_number_digest'), ['number_digest'])


def downgrade() -> None:
    with op.batch_alter_table('contacts') as batch_op:
        batch_op.add_column(sa.Column('number', sa.String(length=32), nullable=True))
    vault = None

    def open_(id_: int, sealed: str) -> dict:  # type: ignore[type-arg]
        nonlocal vault
        vault = vault or _vault()
        return {"id": id_, "number": vault.open(sealed)}

    _convert("SELECT id, number_sealed FROM contacts WHERE id > :last ORDER BY id LIMIT :n",
             "UPDATE contacts SET number = :number WHERE id = :id", open_)
    with op.batch_alter_table('contacts') as batch_op:
        batch_op.drop_constraint('uq_contacts_number_digest', type_='unique')
        batch_op.drop_column('number_sealed')
        batch_op.drop_column('number_digest')
        batch_op.alter_column('number', existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_contacts_number'), ['number'])
