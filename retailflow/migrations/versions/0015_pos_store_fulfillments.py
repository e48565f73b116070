"""pos_store_fulfillments: fulfillment requests to stores (ship-from-store, click-and-collect) through the POS role,
keyed by the release reference (issue 20, item 3: adapters/sql/store_fulfillment.py, docs/fulfillment.md)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 03:40:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | Sequence[str] | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'pos_store_fulfillments',
        sa.Column('ref', sa.String(length=255), nullable=False),
        sa.Column('provider', sa.String(length=16), nullable=False),
        sa.Column('store_id', sa.String(length=64), nullable=False),
        sa.Column('location', sa.String(length=64), nullable=False),
        sa.Column('order_ref', sa.String(length=255), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('lines', sa.JSON(), nullable=False),
        sa.Column('recipient', sa.String(length=255), nullable=True),
        sa.Column('external_id', sa.String(length=128), nullable=True),
        sa.Column('fulfillment_uid', sa.String(length=128), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('prepared_by', sa.String(length=255), nullable=True),
        sa.Column('prepared_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('completed_by', sa.String(length=255), nullable=True),
        sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('carrier', sa.String(length=64), nullable=True),
        sa.Column('tracking_number', sa.String(length=128), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('ref'),
        sa.UniqueConstraint('external_id'),
    )
    op.create_index('ix_pos_store_fulfillments_store_state', 'pos_store_fulfillments', ['store_id', 'state'])


def downgrade() -> None:
    op.drop_index('ix_pos_store_fulfillments_store_state', table_name='pos_store_fulfillments')
    op.drop_table('pos_store_fulfillments')
