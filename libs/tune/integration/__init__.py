"""Integrations of Tune with other libraries (``ray_train``: Train inside a Tune trial)."""
