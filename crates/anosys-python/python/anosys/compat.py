"""The original AnoSys Python SDK's helper API (``anosys-sdk-core`` 1.0.14),
for code written against it: configuration helpers, the key resolver, a
plain HTTP client for the AnoSys API, and the key mapping.

``import anosys_sdk_core`` and ``import anosys_sdk_openai`` give these
under the original names; new code needs none of them (anosys resolves the
key, maps and delivers records itself, in the background).

>>> from anosys.compat import BASE_KEY_MAPPING, get_env_bool
>>> BASE_KEY_MAPPING["gen_ai.request.model"]
'gen_ai_request_model'
>>> get_env_bool("ANOSYS_SOME_UNSET_FLAG", default=False)
False
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from typing import Any, Dict, List, Mapping, Optional

from . import _native
from .encryption import encrypt_payload

__all__ = [
    "AnosysClient",
    "AnosysResponse",
    "BASE_KEY_MAPPING",
    "DEFAULT_API_URL",
    "DEFAULT_STARTING_INDICES",
    "get_api_url",
    "get_env_bool",
    "resolve_api_key",
]

_logger = logging.getLogger("anosys")

#: The URL the original SDK falls back to when no key resolves (and
#: ``ANOSYS_API_URL`` is unset). anosys's own pipeline never sends there: it
#: sends nothing to AnoSys until a key resolves or a URL is set.
DEFAULT_API_URL = "https://www.anosys.ai"

#: Logical key → AnoSys column: the fixed columns, as the AnoSys sink maps
#: them (the original ``BASE_KEY_MAPPING``, plus anosys's
#: ``anosys.record_id``, ``gen_ai.usage.cost`` and ``links``). Keys not here
#: get the next free ``cvs``/``cvn``/``cvb`` slot by value type.
BASE_KEY_MAPPING: Dict[str, str] = dict(_native.KEY_MAPPING)

#: The first dynamic slot of each type (see :func:`anosys.setup_api`).
DEFAULT_STARTING_INDICES: Dict[str, int] = {"string": 100, "number": 3, "bool": 1}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def get_env_bool(var_name: str, default: bool = True) -> bool:
    """An environment variable as a boolean: ``1``/``true``/``yes``/``on``
    and ``0``/``false``/``no``/``off`` (any case, trimmed); unset gives
    ``default``; any other non-blank text is true, as in the original."""
    value = os.environ.get(var_name)
    if value is None:
        return default
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return bool(text)


def _default_api_url() -> str:
    return os.environ.get("ANOSYS_API_URL") or DEFAULT_API_URL


def resolve_api_key(api_key: Optional[str] = None, timeout: float = 30) -> str:
    """The log URL for an AnoSys API key (default ``ANOSYS_API_KEY``), asked
    of the resolver (``ANOSYS_RESOLVER_URL``) now, through the engine's
    resolver (retried on connection errors and 5xx).

    As in the original: without a key, or when it does not resolve, a
    warning or error is logged (on the ``anosys`` logger, never with the
    key) and ``ANOSYS_API_URL`` or :data:`DEFAULT_API_URL` is returned.
    """
    if api_key is None:
        api_key = os.environ.get("ANOSYS_API_KEY")
    if not api_key:
        _logger.warning(
            "ANOSYS_API_KEY not found. Please obtain your API key from "
            "https://console.anosys.ai/collect/integrationoptions"
        )
        return _default_api_url()
    try:
        return _native.resolve_api_key(api_key, _native.resolver_url(), float(timeout))
    except (ConnectionError, ValueError) as exc:
        _logger.error("Failed to resolve API key: %s", exc)
        return _default_api_url()


def get_api_url(override_url: Optional[str] = None) -> str:
    """``override_url`` if given, else :func:`resolve_api_key`."""
    if override_url:
        return override_url
    return resolve_api_key()


class AnosysResponse:
    """What the AnoSys API answered: ``status_code``, ``headers``,
    ``content`` (bytes), ``text``, ``json()`` and ``ok``, as the
    ``requests.Response`` the original returned has them."""

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes, url: str) -> None:
        self.status_code = status_code
        self.headers: Dict[str, str] = dict(headers)
        self.content = content
        self.url = url

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def __repr__(self) -> str:
        return f"<AnosysResponse [{self.status_code}]>"


class AnosysClient:
    """A plain, synchronous client for the AnoSys API, as in the original
    SDK: :meth:`send` POSTs one JSON body now, on the caller's thread
    (encrypted by :func:`anosys.encryption.encrypt_payload` when
    ``ANOSYS_ENCRYPTION_KEY`` is set).

    This bypasses anosys's pipeline (no queue, retry, outbox or
    counters); to record something, use :func:`anosys.anosys_raw_logger`.

    - ``api_url``: where to POST; else resolved from ``api_key`` (default
      ``ANOSYS_API_KEY``) now, by :func:`resolve_api_key`.
    - ``timeout``: seconds per request.
    """

    def __init__(self, api_url: Optional[str] = None, api_key: Optional[str] = None, timeout: float = 5) -> None:
        self.api_url = api_url if api_url else resolve_api_key(api_key)
        self.timeout = timeout

    def send(self, data: Dict[str, Any]) -> Optional[AnosysResponse]:
        """POSTs ``data`` as JSON. Returns the response when it is a
        success (2xx), else logs why (``POST failed: ...``) and returns
        ``None``; never raises."""
        try:
            body = json.dumps(encrypt_payload(data)).encode("utf-8")
            request = urllib.request.Request(
                self.api_url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return AnosysResponse(response.status, response.headers, response.read(), self.api_url)
        except urllib.error.HTTPError as exc:
            _logger.error("POST failed: HTTP %s from %s", exc.code, self.api_url)
        except Exception as exc:
            _logger.error("POST failed: %s: %s", type(exc).__name__, exc)
        return None

    def send_batch(self, items: List[Dict[str, Any]]) -> List[Optional[AnosysResponse]]:
        """:meth:`send` for each item, in order."""
        return [self.send(item) for item in items]
