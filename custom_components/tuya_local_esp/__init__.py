"""Tuya Local ESP integration."""
