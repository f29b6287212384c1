"""sessions end on the server: a per-user nonce in the session id, changed at logout

Revision ID: 0006
Revises: 0005
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Empty for existing accounts: their current sessions (which carry no nonce) end, once.
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('session_nonce', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_nonce')
