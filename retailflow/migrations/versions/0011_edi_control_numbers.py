"""EDI drop-ship suppliers: interchange control numbers per trading partner and the interchanges exchanged with
their 997 acknowledgements, and the embedded ERP's supplier invoices (payables) (issue 20, drop-ship suppliers over EDI)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 19:10:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | Sequence[str] | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # money as migration 0006 left it: NUMERIC(18, 4) on PostgreSQL, a BIGINT count of 1/10000 units on SQLite
    money = sa.BigInteger() if op.get_bind().dialect.name == "sqlite" else sa.Numeric(precision=18, scale=4)
    op.create_table(
        'edi_control_numbers',
        sa.Column('partner', sa.String(length=64), nullable=False),
        sa.Column('last_control', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('partner'),
    )
    op.create_table(
        'edi_interchanges',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('partner', sa.String(length=64), nullable=False),
        sa.Column('control_number', sa.String(length=14), nullable=False),
        sa.Column('group_control', sa.String(length=14), nullable=True),
        sa.Column('transaction_sets', sa.String(length=255), nullable=False),
        sa.Column('reference', sa.String(length=64), nullable=True),
        sa.Column('file_name', sa.String(length=255), nullable=True),
        sa.Column('ack_status', sa.String(length=16), nullable=True),
        sa.Column('ack_control', sa.String(length=14), nullable=True),
        sa.Column('ack_detail', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('acked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('direction', 'partner', 'control_number', name='uq_edi_interchanges_control'),
    )
    op.create_index('ix_edi_interchanges_reference', 'edi_interchanges', ['reference'])
    op.create_table(  # the embedded ERP's payables: supplier invoices, idempotent by supplier and number
        'supplier_invoices',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('supplier_id', sa.String(length=64), nullable=False),
        sa.Column('invoice_number', sa.String(length=64), nullable=False),
        sa.Column('po_number', sa.String(length=64), nullable=True),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('total', money, nullable=False),
        sa.Column('lines', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('supplier_id', 'invoice_number', name='uq_supplier_invoices_number'),
    )


def downgrade() -> None:
    op.drop_table('supplier_invoices')
    op.drop_index('ix_edi_interchanges_reference', table_name='edi_interchanges')
    op.drop_table('edi_interchanges')
    op.drop_table('edi_control_numbers')
