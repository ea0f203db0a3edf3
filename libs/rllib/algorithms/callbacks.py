"""Old import path of the callbacks base class."""
from ..callbacks.callbacks import DefaultCallbacks, RLlibCallback

__all__ = ["DefaultCallbacks", "RLlibCallback"]
