"""inbox items and feedback

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26 17:40:24.653910
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.inbox.tables

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inbox_items',
    sa.Column('id', sa.String(length=256), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('post', sa.JSON(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', service.inbox.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ingested_at', service.inbox.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('clock_start', service.inbox.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('model_name', sa.String(length=200), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('policy', sa.String(length=200), nullable=False),
    sa.Column('predictions', sa.JSON(), nullable=False),
    sa.Column('intent', sa.String(length=64), nullable=False),
    sa.Column('sentiment', sa.String(length=64), nullable=False),
    sa.Column('urgency', sa.String(length=64), nullable=False),
    sa.Column('needs_response', sa.Boolean(), nullable=False),
    sa.Column('priority', sa.Float(), nullable=False),
    sa.Column('tier', sa.String(length=8), nullable=False),
    sa.Column('route', sa.String(length=32), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('scored_at', service.inbox.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sla_minutes', sa.Float(), nullable=True),
    sa.Column('at_risk_at', service.inbox.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('due_at', service.inbox.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('resolved_by', sa.String(length=200), nullable=True),
    sa.Column('resolved_at', service.inbox.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolution_note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('inbox_items', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_items_open_order', ['status', 'priority', 'clock_start'], unique=False)
        batch_op.create_index('ix_inbox_items_status_due', ['status', 'due_at'], unique=False)
        batch_op.create_index('ix_inbox_items_status_route', ['status', 'route'], unique=False)

    op.create_table('inbox_feedback',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('item_id', sa.String(length=256), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('created_at', service.inbox.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['inbox_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('inbox_feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbox_feedback_item_id'), ['item_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('inbox_feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbox_feedback_item_id'))

    op.drop_table('inbox_feedback')
    with op.batch_alter_table('inbox_items', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_items_status_route')
        batch_op.drop_index('ix_inbox_items_status_due')
        batch_op.drop_index('ix_inbox_items_open_order')

    op.drop_table('inbox_items')
