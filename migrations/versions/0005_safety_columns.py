"""reporter safety: why a message was set aside, where a report came from, verified phones

Revision ID: 0005
Revises: 0004
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.add_column(sa.Column('error', sa.String(length=200), nullable=True))
    with op.batch_alter_table('reports') as batch:
        batch.add_column(sa.Column('source', sa.String(length=12), nullable=True))
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('phone_verified_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('phone_verified_at')
    with op.batch_alter_table('reports') as batch:
        batch.drop_column('source')
    with op.batch_alter_table('messages') as batch:
        batch.drop_column('error')
