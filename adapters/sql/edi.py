"""The EDI supplier adapter's tables (adapters/supplier/): interchange control numbers per trading partner and the
interchanges exchanged, with their functional acknowledgement (997 sent for what we received, 997 received for
what we sent), so a duplicate inbound interchange is recognised and not processed twice."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, UniqueConstraint

from adapters.sql.base import UtcDateTime, metadata, utcnow

edi_control_numbers = Table(  # the last ISA13 we used towards each partner: unique and monotonic, never reused
    "edi_control_numbers",
    metadata,
    Column("partner", String(64), primary_key=True),
    Column("last_control", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
)

edi_interchanges = Table(
    "edi_interchanges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("direction", String(8), nullable=False),  # outbound | inbound
    Column("partner", String(64), nullable=False),
    Column("control_number", String(14), nullable=False),  # ISA13
    Column("group_control", String(14)),  # GS06
    Column("transaction_sets", String(255), nullable=False),  # e.g. "855,856"
    Column("reference", String(64)),  # the PO number the interchange is about
    Column("file_name", String(255)),
    Column("ack_status", String(16)),  # 997 AK9: A / E / R for outbound; for inbound what our 997 said
    Column("ack_control", String(14)),  # the ISA13 of the 997 sent or received
    Column("ack_detail", Text),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("acked_at", UtcDateTime()),
    Column("processed_at", UtcDateTime()),  # inbound: its documents were taken (acknowledge); again = duplicate
    UniqueConstraint("direction", "partner", "control_number", name="uq_edi_interchanges_control"),
    Index("ix_edi_interchanges_reference", "reference"),
)
