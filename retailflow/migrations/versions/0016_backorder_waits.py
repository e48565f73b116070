"""backorder_waits: backordered order lines waiting for an item, so a receipt of it signals their orders (issue 20:
adapters/inventory/backorders.py, docs/fulfillment.md "Backorders wait for a receipt")

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 21:00:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | Sequence[str] | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'backorder_waits',
        sa.Column('order_key', sa.String(length=255), nullable=False),
        sa.Column('line_id', sa.String(length=64), nullable=False),
        sa.Column('item_code', sa.String(length=64), nullable=False),
        sa.Column('channel', sa.String(length=64), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('locations', sa.JSON(), nullable=False),
        sa.Column('since', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('order_key', 'line_id', 'item_code'),
    )
    op.create_index('ix_backorder_waits_item', 'backorder_waits', ['item_code'])


def downgrade() -> None:
    op.drop_index('ix_backorder_waits_item', table_name='backorder_waits')
    op.drop_table('backorder_waits')
