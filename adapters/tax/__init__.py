"""tax adapters."""
