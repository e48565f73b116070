"""prices: the price book (accepted price change lines and their status), what each channel shows now and why,
and the embedded POS price list (issue 21, part 1: adapters/pricing/, docs/pricing.md)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 19:30:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | Sequence[str] | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'price_changes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('change_set_id', sa.String(length=100), nullable=False),
        sa.Column('line', sa.Integer(), nullable=False),
        sa.Column('item_code', sa.String(length=128), nullable=False),
        sa.Column('channel', sa.String(length=64), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('amount', sa.String(length=40), nullable=False),
        sa.Column('compare_at', sa.String(length=40), nullable=True),
        sa.Column('effective_from', sa.DateTime(timezone=True), nullable=False),
        sa.Column('effective_to', sa.DateTime(timezone=True), nullable=True),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('promotion_id', sa.String(length=100), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('requested_by', sa.String(length=200), nullable=False),
        sa.Column('approved_by', sa.String(length=500), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('change_set_id', 'line', name='uq_price_changes_line'),
    )
    op.create_index('ix_price_changes_item_channel', 'price_changes', ['item_code', 'channel'])
    op.create_table(
        'channel_prices_shown',
        sa.Column('channel', sa.String(length=64), nullable=False),
        sa.Column('channel_sku', sa.String(length=128), nullable=False),
        sa.Column('item_code', sa.String(length=128), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('amount', sa.String(length=40), nullable=False),
        sa.Column('compare_at', sa.String(length=40), nullable=True),
        sa.Column('change_set_id', sa.String(length=100), nullable=False),
        sa.Column('line', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('approved_by', sa.String(length=500), nullable=True),
        sa.Column('verified_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('channel', 'channel_sku'),
    )
    op.create_index('ix_channel_prices_shown_item', 'channel_prices_shown', ['item_code'])
    op.create_table(
        'pos_prices',
        sa.Column('channel', sa.String(length=64), nullable=False),
        sa.Column('sku', sa.String(length=128), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('amount', sa.String(length=40), nullable=False),
        sa.Column('compare_at', sa.String(length=40), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('channel', 'sku'),
    )


def downgrade() -> None:
    op.drop_table('pos_prices')
    op.drop_index('ix_channel_prices_shown_item', table_name='channel_prices_shown')
    op.drop_table('channel_prices_shown')
    op.drop_index('ix_price_changes_item_channel', table_name='price_changes')
    op.drop_table('price_changes')
