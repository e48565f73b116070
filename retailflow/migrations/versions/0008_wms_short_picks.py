"""wms short picks: the embedded WMS records each pick (shipped and short lines, shipment id, round), issue 17

A request the warehouse could not fill is `short_picked`: the units it had went out as a partial shipment
(`shipped_lines`, `shipment_id`), the rest were reported short (`short_lines`). `pick_round` numbers the picks of
one request (an amend after a short pick releases it again), so each shipment and short pick has its own id.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 15:30:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('wms_requests') as batch:
        batch.add_column(sa.Column('shipped_lines', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('short_lines', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('shipment_id', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('picked_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('pick_round', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('wms_requests') as batch:
        batch.drop_column('pick_round')
        batch.drop_column('picked_at')
        batch.drop_column('shipment_id')
        batch.drop_column('short_lines')
        batch.drop_column('shipped_lines')
