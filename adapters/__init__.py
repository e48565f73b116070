"""Ports (one subpackage per role) and their implementations: embedded (`local`) and vendor clients."""
