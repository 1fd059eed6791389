"""``anosys_sdk_core.config``: the original's configuration helpers, from
:mod:`anosys.compat`."""

from anosys import _native
from anosys.compat import DEFAULT_API_URL, get_api_url, get_env_bool, resolve_api_key

__all__ = ["API_KEY_RESOLVER_URL", "DEFAULT_API_URL", "get_api_url", "get_env_bool", "resolve_api_key"]

#: The key resolver ``resolve_api_key`` asks, as it was at import
#: (``ANOSYS_RESOLVER_URL``, else AnoSys's). ``resolve_api_key`` reads the
#: variable again on each call.
try:
    API_KEY_RESOLVER_URL: str = _native.resolver_url()
except ValueError:  # an invalid ANOSYS_RESOLVER_URL: resolve_api_key says so
    API_KEY_RESOLVER_URL = _native.DEFAULT_RESOLVER_URL
