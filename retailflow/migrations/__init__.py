"""Alembic migrations of the platform database (`retailflow db upgrade`). See docs/deployment.md."""
