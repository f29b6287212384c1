"""a STOP stored for a worker under load: the contact's outbox stops at once

Revision ID: 0011
Revises: 0010
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Empty for every existing contact: no STOP of theirs waits for a worker.
    with op.batch_alter_table('contacts') as batch:
        batch.add_column(sa.Column('stop_pending_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('contacts') as batch:
        batch.drop_column('stop_pending_at')
