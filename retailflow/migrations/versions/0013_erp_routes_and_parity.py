"""erp routes and parity: the pinned route of each business key, failed shadow postings and parity verdicts of a
dual-run (issue 21, part 2: adapters/erp/routing.py, docs/erp-migration.md)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 19:00:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | Sequence[str] | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'erp_routes',
        sa.Column('process', sa.String(length=32), nullable=False),
        sa.Column('business_key', sa.String(length=255), nullable=False),
        sa.Column('record_erp', sa.String(length=64), nullable=False),
        sa.Column('shadow_erp', sa.String(length=64), nullable=True),
        sa.Column('scope', sa.String(length=255), nullable=False),
        sa.Column('pinned_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('process', 'business_key'),
    )
    op.create_index('ix_erp_routes_pinned_at', 'erp_routes', ['pinned_at'])
    op.create_table(
        'erp_shadow_failures',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('process', sa.String(length=32), nullable=False),
        sa.Column('business_key', sa.String(length=255), nullable=False),
        sa.Column('operation', sa.String(length=64), nullable=False),
        sa.Column('shadow_erp', sa.String(length=64), nullable=False),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('failed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_erp_shadow_failures_key', 'erp_shadow_failures', ['process', 'business_key'])
    op.create_table(
        'erp_parity_results',
        sa.Column('process', sa.String(length=32), nullable=False),
        sa.Column('business_key', sa.String(length=255), nullable=False),
        sa.Column('day', sa.String(length=10), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('differences', sa.JSON(), nullable=False),
        sa.Column('record_document', sa.JSON(), nullable=True),
        sa.Column('shadow_document', sa.JSON(), nullable=True),
        sa.Column('shadow_failures', sa.JSON(), nullable=False),
        sa.Column('run_id', sa.String(length=255), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('process', 'business_key'),
    )
    op.create_index('ix_erp_parity_results_day', 'erp_parity_results', ['process', 'day'])


def downgrade() -> None:
    op.drop_index('ix_erp_parity_results_day', table_name='erp_parity_results')
    op.drop_table('erp_parity_results')
    op.drop_index('ix_erp_shadow_failures_key', table_name='erp_shadow_failures')
    op.drop_table('erp_shadow_failures')
    op.drop_index('ix_erp_routes_pinned_at', table_name='erp_routes')
    op.drop_table('erp_routes')
