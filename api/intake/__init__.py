"""Webhook intake: one pipeline (pipeline.py), one module per source (shopify, returns, wms, shipstation, square)
and the registry of sources (registry.py)."""
