"""The platform's own stores (not an external system)."""
