"""Inventory: the stock ledger (`ledger.py`) and the snapshot sources drift reconciliation compares it with."""
