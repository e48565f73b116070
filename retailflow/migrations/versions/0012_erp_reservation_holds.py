"""erp reservation holds: stock an order took from an ERPNext bin before its sales order was submitted (issue 19,
no oversell at peak: adapters/erp/holds.py)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 18:50:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | Sequence[str] | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'erp_reservation_holds',
        sa.Column('reservation_key', sa.String(length=255), nullable=False),
        sa.Column('item_code', sa.String(length=128), nullable=False),
        sa.Column('warehouse', sa.String(length=255), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('reservation_key', 'item_code'),
    )


def downgrade() -> None:
    op.drop_table('erp_reservation_holds')
