"""fulfillment_node_loads: releases per fulfillment node and shipping day, held against the node's capacity per
day by plan_sourcing (issue 20, item 1: adapters/sql/node_loads.py, docs/fulfillment.md)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 21:05:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | Sequence[str] | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'fulfillment_node_loads',
        sa.Column('release_ref', sa.String(length=255), nullable=False),
        sa.Column('node_id', sa.String(length=64), nullable=False),
        sa.Column('ship_day', sa.Date(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('release_ref'),
    )
    op.create_index('ix_fulfillment_node_loads_node_day', 'fulfillment_node_loads', ['node_id', 'ship_day'])


def downgrade() -> None:
    op.drop_index('ix_fulfillment_node_loads_node_day', table_name='fulfillment_node_loads')
    op.drop_table('fulfillment_node_loads')
