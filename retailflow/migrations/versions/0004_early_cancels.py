"""early cancels: a channel's cancellation that arrived before its order is held, and the order's run starts
with it (the cancel wins; the order never reaches the warehouse).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:45:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('early_cancels',
    sa.Column('workflow_id', sa.String(length=255), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('delivery_id', sa.String(length=255), nullable=True),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('workflow_id')
    )


def downgrade() -> None:
    op.drop_table('early_cancels')
