"""api_key_stores: a `store` API key's scope, the store ids whose fulfillment requests it may list and move
(issue 20, item 3: canonical/access.py Role.store, adapters/platform/api_keys.py, README "Access")

NULL for the keys of the other roles, and for every key made before: their powers are unchanged.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 21:30:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | Sequence[str] | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('stores', sa.JSON(), nullable=True))


def downgrade() -> None:
    # the code of 0017 knows no `store` role (it could not read such a row back) and a store key would lose its
    # scope: the store keys go with the column
    op.execute(sa.text("DELETE FROM api_keys WHERE role = 'store'"))
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('stores')
