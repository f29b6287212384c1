"""messages: provider -> channel, channel -> medium, route -> handled_by (names for what they hold)

Revision ID: 0007
Revises: 0006
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # `channel` held the medium and `provider` the channel: the medium moves out first.
    with op.batch_alter_table('messages') as batch:
        batch.drop_constraint('uq_messages_provider_id', type_='unique')
        batch.alter_column('channel', new_column_name='medium')
    with op.batch_alter_table('messages') as batch:
        batch.alter_column('provider', new_column_name='channel')
        batch.alter_column('route', new_column_name='handled_by')
    # A batch of its own: on SQLite, a constraint added in the batch that renames its column is lost.
    with op.batch_alter_table('messages') as batch:
        batch.create_unique_constraint('uq_messages_channel_provider_id', ['channel', 'provider_id'])


def downgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.drop_constraint('uq_messages_channel_provider_id', type_='unique')
        batch.alter_column('handled_by', new_column_name='route')
        batch.alter_column('channel', new_column_name='provider')
    with op.batch_alter_table('messages') as batch:
        batch.alter_column('medium', new_column_name='channel')
    with op.batch_alter_table('messages') as batch:
        batch.create_unique_constraint('uq_messages_provider_id', ['provider', 'provider_id'])
