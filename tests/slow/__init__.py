"""Slower tiers: still collected by plain `pytest`; deselect with `-m "not slow"`."""
