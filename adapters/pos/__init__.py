"""Store POS adapters: vendor webhooks mapped to canonical POS transactions, and POS stock movements."""
