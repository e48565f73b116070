"""early events: a shipment, short pick or receipt that arrived before its workflow started is held and delivered
when the workflow starts (issue 19, out-of-order events attach instead of bouncing)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:20:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'early_events',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('workflow_id', sa.String(length=255), nullable=False),
        sa.Column('signal', sa.String(length=64), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.Column('delivery_id', sa.String(length=255), nullable=True),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('source', 'delivery_id', name='uq_early_events_delivery'),
    )
    op.create_index('ix_early_events_workflow', 'early_events', ['workflow_id', 'applied_at'])


def downgrade() -> None:
    op.drop_index('ix_early_events_workflow', table_name='early_events')
    op.drop_table('early_events')
