"""``anosys_sdk_core.client``: :class:`anosys.compat.AnosysClient`."""

from anosys.compat import AnosysClient, AnosysResponse

__all__ = ["AnosysClient", "AnosysResponse"]
