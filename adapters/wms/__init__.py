"""wms adapters."""
