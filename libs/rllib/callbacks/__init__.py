from .callbacks import DefaultCallbacks, RLlibCallback

__all__ = ["DefaultCallbacks", "RLlibCallback"]
