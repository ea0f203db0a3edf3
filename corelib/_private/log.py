"""The runtime's own voice: the ``minray`` logger and its default handler.

Every runtime module logs through ``logging.getLogger("minray.<area>")``
(never print). As Ray does for its "ray" logger, the ``minray`` logger gets
one handler of its own (stderr, resolved when a record is written, so
redirected or captured stderr works) with a timestamped format, level INFO,
and does not propagate to the root logger, so a user's ``basicConfig`` neither
doubles nor hides the runtime's messages. The handler is installed when this
module is first imported (net/transport.py imports it, so every runtime
process has it); ``init(logging_level=..., logging_format=...)`` calls
``configure`` in the driver, as ``ray.init`` does.

Example::

    import logging, minray
    minray.init(logging_level=logging.WARNING,
                logging_format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("minray").info("hidden")      # below WARNING
"""

import logging
import sys

LOGGER_NAME = "minray"
LOGGER_FORMAT = "%(asctime)s\t%(levelname)s %(filename)s:%(lineno)s -- %(message)s"
LOGGER_LEVEL = logging.INFO


class StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever ``sys.stderr`` is when a record is written."""

    def __init__(self):
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):   # StreamHandler.setStream; we always follow sys.stderr
        pass


def _install():
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter(LOGGER_FORMAT))
        logger.addHandler(handler)
        logger.setLevel(LOGGER_LEVEL)
        logger.propagate = False
    return logger


def parse_level(level):
    """An int level, or a level name in any case ("info", "WARNING"); ValueError otherwise."""
    if isinstance(level, bool):
        raise ValueError(f"logging_level must be a logging level, got {level!r}.")
    if isinstance(level, int):
        return level
    if isinstance(level, str):
        value = logging.getLevelName(level.upper())
        if isinstance(value, int):
            return value
    raise ValueError(f"logging_level must be a level such as logging.INFO or 'debug', "
                     f"got {level!r}.")


def configure(logging_level=None, logging_format=None):
    """Set the ``minray`` logger's level and its handlers' format (init's options).

    ``logging_level`` None keeps INFO; ``logging_format`` None keeps the default
    format. Returns the logger.
    """
    logger = _install()
    if logging_format is not None:
        if not isinstance(logging_format, str):
            raise ValueError(f"logging_format must be a str, got {logging_format!r}.")
        formatter = logging.Formatter(logging_format)
        for handler in logger.handlers:
            handler.setFormatter(formatter)
    logger.setLevel(LOGGER_LEVEL if logging_level is None else parse_level(logging_level))
    return logger


_install()
