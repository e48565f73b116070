"""The platform's own tables: the run status projection (adapters/platform/projection.py), webhook deliveries and quarantine (the intake)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from adapters.sql.base import UtcDateTime, metadata, utcnow

run_status = Table(
    "run_status",
    metadata,
    Column("workflow_id", String(255), primary_key=True),
    Column("kind", String(32), nullable=False),  # order | return | settlement | storeday ...
    Column("channel", String(64)),
    Column("external_id", String(128)),
    Column("reference", String(128)),  # the channel's human order number, e.g. #9999
    Column("status", String(32), nullable=False),
    Column("needs_attention", Boolean, nullable=False, default=False),
    Column("reason", Text),
    Column("suggested_action", Text),
    Column("erp_ref", String(64)),
    Column("late", Boolean, nullable=False, default=False),
    Column("version", Integer, nullable=False, default=0),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
    Index("ix_run_status_list", "kind", "status", "channel"),
    Index("ix_run_status_attention", "needs_attention", "updated_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("delivery_id", String(255), primary_key=True),
    Column("topic", String(128)),
    Column("workflow_id", String(255)),
    Column("received_at", UtcDateTime(), nullable=False, default=utcnow),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("topic", String(128)),
    Column("delivery_id", String(255)),
    Column("headers", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("received_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("replayed_at", UtcDateTime()),
    Column("replay_result", Text),
    Column("resolved", Boolean, nullable=False, default=False),
)

early_cancels = Table(  # a channel's cancellation that arrived before its order: the create that follows obeys it
    "early_cancels",
    metadata,
    Column("workflow_id", String(255), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("delivery_id", String(255)),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("applied_at", UtcDateTime()),
)

early_events = Table(  # a shipment, short pick or receipt that arrived before its workflow started: delivered then
    "early_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workflow_id", String(255), nullable=False),
    Column("signal", String(64), nullable=False),
    Column("payload", JSON, nullable=False),  # the signal's argument (its JSON form)
    Column("source", String(64), nullable=False),
    Column("delivery_id", String(255)),
    Column("received_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("applied_at", UtcDateTime()),
    UniqueConstraint("source", "delivery_id", name="uq_early_events_delivery"),  # a redelivery is held once
    Index("ix_early_events_workflow", "workflow_id", "applied_at"),
)

api_keys = Table(  # the API's keys (adapters/platform/api_keys.py): only a hash of each secret is kept
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),  # the lookup id printed in the key: one indexed lookup
    Column("name", String(128), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("expires_at", UtcDateTime()),
    Column("revoked_at", UtcDateTime()),
    Column("last_used_at", UtcDateTime()),
    # a `store` key's scope: the store ids it acts for (a JSON list, migration 0018); NULL for the other roles
    Column("stores", JSON),
)
