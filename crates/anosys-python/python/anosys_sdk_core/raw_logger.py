"""``anosys_sdk_core.raw_logger``: :func:`anosys.anosys_raw_logger`."""

from anosys import anosys_raw_logger

__all__ = ["anosys_raw_logger"]
