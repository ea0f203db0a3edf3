from .policy import PolicySpec

__all__ = ["PolicySpec"]
