"""``anosys_sdk_core.models``: the key mapping, from :mod:`anosys.compat`."""

from anosys.compat import BASE_KEY_MAPPING, DEFAULT_STARTING_INDICES

__all__ = ["BASE_KEY_MAPPING", "DEFAULT_STARTING_INDICES"]
