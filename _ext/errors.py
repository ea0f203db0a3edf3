"""Exceptions shared by every `_ext` module and its pure-Python twin.

A compiled module and its twin import their exceptions from here, so that
`except ProtocolError` catches the same class whichever implementation
`minray._ext` selected (see `_ext/__init__.py`).
"""


class ProtocolError(Exception):
    """The byte stream broke the wire format: the connection cannot be trusted.

    Raised by `FrameReader.feed` for a declared frame length of 0 or above the
    reader's `max_frame_size`, and by every later `feed` on the same reader.
    The only safe reaction is to close the connection.

    >>> from minray._ext import frame
    >>> frame.FrameReader(max_frame_size=16).feed(b"\\xff\\x00\\x00\\x00")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    minray._ext.errors.ProtocolError: frame declares length 255, outside the allowed 1..16 ...
    """
