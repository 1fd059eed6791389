"""The original anosys package's import name: ``from AnosysLoggers import
AnosysOpenAILogger, anosys_logger, anosys_raw_logger, setup_decorator``
keeps working. Everything here is :mod:`anosys`."""

from anosys import *  # noqa: F401,F403
from anosys import (  # noqa: F401
    AnosysOpenAILogger,
    __all__,
    __version__,
    anosys_logger,
    anosys_raw_logger,
    counters,
    flush,
    setup_api,
    setup_decorator,
    shutdown,
)
