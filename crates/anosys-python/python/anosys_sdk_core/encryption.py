"""``anosys_sdk_core.encryption``: :mod:`anosys.encryption`, every public
name of it (its ``__all__``, which is the original module's)."""

from anosys.encryption import *  # noqa: F401,F403
from anosys.encryption import __all__  # noqa: F401
