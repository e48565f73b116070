"""marketplace adapters."""
