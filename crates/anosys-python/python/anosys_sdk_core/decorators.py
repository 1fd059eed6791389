"""``anosys_sdk_core.decorators``: the function logger, the raw logger and
``setup_api``, from :mod:`anosys`."""

from anosys import anosys_logger, anosys_raw_logger, setup_api, setup_decorator

__all__ = ["anosys_logger", "anosys_raw_logger", "setup_api", "setup_decorator"]
