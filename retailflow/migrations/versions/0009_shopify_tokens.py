"""shopify tokens: each shop's app access from the OAuth install (or client credentials), sealed, issue 18

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 12:00:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'shopify_tokens',
        sa.Column('shop', sa.String(length=255), nullable=False),
        sa.Column('grant', sa.String(length=96), nullable=False),
        sa.Column('scopes', sa.String(length=2000), nullable=False),
        sa.Column('sealed', sa.LargeBinary(), nullable=False),
        sa.Column('obtained_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('refresh_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('installed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('shop'),
    )


def downgrade() -> None:
    op.drop_table('shopify_tokens')
