"""erp adapters."""
