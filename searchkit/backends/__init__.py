"""Engines past one machine."""
