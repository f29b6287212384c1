"""evidence: service schedules, delivery checks and corroboration

Revision ID: 0009
Revises: 0008
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('service_schedules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('place', sa.String(length=80), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('service', sa.String(length=40), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('every_days', sa.Integer(), nullable=True),
    sa.Column('ends_on', sa.Date(), nullable=True),
    sa.Column('check_at', sa.Time(), nullable=False),
    sa.Column('sample_size', sa.Integer(), nullable=False),
    sa.Column('no_threshold', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=160), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_service_schedules_case_id_cases'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_schedules'))
    )
    with op.batch_alter_table('service_schedules', schema=None) as batch_op:
        batch_op.create_index('ix_service_schedules_place_service', ['place', 'service'], unique=False)

    op.create_table('checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('schedule_id', sa.Integer(), nullable=True),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('place', sa.String(length=80), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('service', sa.String(length=40), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('ask_after', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('asked', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('asked_at', sa.DateTime(), nullable=True),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_checks_case_id_cases'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['schedule_id'], ['service_schedules.id'], name=op.f('fk_checks_schedule_id_service_schedules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checks')),
    sa.UniqueConstraint('schedule_id', 'due_on', name='uq_checks_schedule_due_on')
    )
    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checks_case_id'), ['case_id'], unique=False)
        batch_op.create_index('ix_checks_status_ask_after', ['status', 'ask_after'], unique=False)

    op.create_table('check_asks',
    sa.Column('check_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('asked_at', sa.DateTime(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('answer', sa.String(length=10), nullable=True),
    sa.Column('answered_at', sa.DateTime(), nullable=True),
    sa.Column('report_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['check_id'], ['checks.id'], name=op.f('fk_check_asks_check_id_checks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_check_asks_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_check_asks_message_id_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_check_asks_report_id_reports'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('check_id', 'contact_id', name=op.f('pk_check_asks'))
    )
    with op.batch_alter_table('check_asks', schema=None) as batch_op:
        batch_op.create_index('ix_check_asks_contact_asked_at', ['contact_id', 'asked_at'], unique=False)

    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('check_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('verification', sa.String(length=12), nullable=True))
        batch_op.create_index(batch_op.f('ix_reports_check_id'), ['check_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_reports_check_id_checks'), 'checks', ['check_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_reports_check_id_checks'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_reports_check_id'))
        batch_op.drop_column('verification')
        batch_op.drop_column('check_id')

    with op.batch_alter_table('check_asks', schema=None) as batch_op:
        batch_op.drop_index('ix_check_asks_contact_asked_at')

    op.drop_table('check_asks')
    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.drop_index('ix_checks_status_ask_after')
        batch_op.drop_index(batch_op.f('ix_checks_case_id'))

    op.drop_table('checks')
    with op.batch_alter_table('service_schedules', schema=None) as batch_op:
        batch_op.drop_index('ix_service_schedules_place_service')

    op.drop_table('service_schedules')
