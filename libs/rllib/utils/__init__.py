"""Utilities: replay buffers, schedules."""
