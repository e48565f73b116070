"""The webhook intake and operations API (FastAPI)."""
