"""Pricing adapters: the price port each channel implements, the embedded POS price list, the price book."""
