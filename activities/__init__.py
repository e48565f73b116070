"""Temporal activities: thin, idempotent, one adapter call each."""
