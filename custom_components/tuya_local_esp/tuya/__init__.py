"""Tuya local protocol library (no Home Assistant imports)."""
