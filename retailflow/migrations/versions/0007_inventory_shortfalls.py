"""inventory shortfalls: units a store sale took back from open reservations (issue 17), adapters/inventory/ledger.py

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 15:20:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('inventory_shortfalls',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('cause_source', sa.String(length=64), nullable=False),
    sa.Column('cause_event_id', sa.String(length=255), nullable=False),
    sa.Column('reservation_key', sa.String(length=255), nullable=False),
    sa.Column('item_code', sa.String(length=64), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('store', sa.String(length=64), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('cause_event_id', 'reservation_key', name='uq_inventory_shortfall')
    )
    op.create_index('ix_inventory_shortfalls_reservation', 'inventory_shortfalls', ['reservation_key'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_inventory_shortfalls_reservation', table_name='inventory_shortfalls')
    op.drop_table('inventory_shortfalls')
