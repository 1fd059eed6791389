"""anosys: LLM observability for OpenAI-style APIs.

Every OpenAI call your application makes, and every function you mark, is
captured as one structured record (OpenTelemetry GenAI semantic
conventions) and delivered in the background by a Rust engine: to AnoSys
when ``ANOSYS_API_KEY`` is set, otherwise to a local SQLite store
(``.anosys/anosys.db``, browse it with the ``anosys`` command).

Example::

    from anosys import AnosysOpenAILogger, anosys_logger, anosys_raw_logger
    from openai import OpenAI

    AnosysOpenAILogger()            # every openai call from now on is recorded
    client = OpenAI()

    @anosys_logger(source="billing")
    def charge(customer: str, cents: int) -> str:
        return f"charged {customer} {cents}"

    charge("acme", 1200)
    anosys_raw_logger({"event": "signup", "plan": "pro"})

Capture never raises into your code and never waits on the network;
everything queued is delivered at interpreter exit, or when you call
:func:`flush`.
"""

from __future__ import annotations

import atexit as _atexit
import os as _os
import sys as _sys
from typing import Any, Callable, Dict, Mapping, Optional, Union

from . import _native
from ._decorator import anosys_logger, current_call
from ._openai import (
    AnosysOpenAILogger,
    clear_user_context,
    get_user_context,
    instrument_openai,
    set_user_context,
    uninstrument_openai,
)

try:
    from importlib.metadata import version as _version

    __version__: str = _version("anosys")
except Exception:  # pragma: no cover - not installed as a distribution
    __version__ = _native.ENGINE_VERSION

__all__ = [
    "AnosysOpenAILogger",
    "anosys_logger",
    "anosys_raw_logger",
    "clear_user_context",
    "counters",
    "current_call",
    "flush",
    "get_user_context",
    "instrument_openai",
    "set_before_send",
    "set_user_context",
    "setup_api",
    "setup_decorator",
    "shutdown",
    "uninstrument_openai",
]


def _service_name() -> str:
    script = _sys.argv[0] if _sys.argv else ""
    if not script or script in ("-c", "-m", "-"):
        return "python"
    return _os.path.splitext(_os.path.basename(script))[0] or "python"


_native.set_sdk_identity(__version__, _service_name())


def anosys_raw_logger(data: Any = None) -> bool:
    """Log arbitrary data as one record.

    Each top-level key of a dict gets its own AnoSys column; the whole value
    is kept as ``raw``. Returns ``False`` when the record was dropped (the
    queue was full); never raises.

    >>> anosys_raw_logger({"event": "user_action", "action": "button_click", "user_id": "12345"})
    True
    """
    try:
        return _native.log_raw({} if data is None else data)
    except Exception:
        return False


def setup_api(path: Optional[str] = None, starting_indices: Optional[Mapping[str, int]] = None) -> None:
    """Where records go, and where dynamic AnoSys columns start.

    ``path`` is the AnoSys ingestion URL (default: ``ANOSYS_API_URL``, or the
    URL the resolver gives for ``ANOSYS_API_KEY``). ``starting_indices``
    gives the first dynamic slot per type, e.g.
    ``{"string": 100, "number": 3, "bool": 1}`` (the defaults). Restarts the
    pipeline; what the old one holds is still delivered.

    Raises ``ValueError`` for an invalid URL or index.
    """
    _native.setup_api(path, dict(starting_indices) if starting_indices is not None else None)


def set_before_send(
    callback: Optional[Callable[[Dict[str, Any]], Union[Dict[str, Any], bool, None]]],
) -> None:
    """Have ``callback`` see every record before it is queued.

    It gets the record as a dict (``name``, ``kind``, ``input``, ``output``,
    ``attributes``, …) on the thread that captured it, and returns the dict
    (changed or not) or ``True`` to keep it, ``None`` or ``False`` to drop
    it (counted as ``filtered`` in :func:`flush`'s report). Keep it quick.
    It runs before the engine's own redaction (``ANOSYS_REDACT``), pricing
    and sampling. An exception in it drops the record and is reported once
    on stderr; it never reaches your code. ``None`` removes the callback.

    >>> def drop_health_checks(record):
    ...     record["attributes"].pop("enduser.id", None)
    ...     return None if record["name"] == "health" else record
    >>> set_before_send(drop_health_checks)
    >>> set_before_send(None)
    """
    _native.set_before_send(callback)


#: The seed package's name for :func:`setup_api`.
setup_decorator = setup_api


def flush(timeout: Optional[float] = 5.0) -> Dict[str, Any]:
    """Deliver everything captured so far, waiting up to ``timeout`` seconds
    (``None``: the configured shutdown timeout, ``ANOSYS_SHUTDOWN_TIMEOUT_MS``).

    Returns the pipeline's counters (``captured``, ``delivered``,
    ``dropped``, ``failed``, ``kept_in_outbox``, ``outbox_delivered``, ``duplicates``, ``in_outbox``, …) plus ``pending`` and
    ``completed`` (``False`` when the timeout passed first).
    """
    return _native.flush(timeout)


def shutdown(timeout: Optional[float] = None) -> Dict[str, Any]:
    """Stop the pipeline after delivering what it holds (up to ``timeout``
    seconds; ``None``: the configured shutdown timeout). A later capture
    starts a new one."""
    return _native.shutdown(timeout)


def counters() -> Dict[str, int]:
    """What the pipeline did so far: captured, delivered, dropped, …"""
    return _native.counters()


def _deliver_at_exit() -> None:
    try:
        _native.flush(None)  # waits up to ANOSYS_SHUTDOWN_TIMEOUT_MS
    except Exception:
        pass


_atexit.register(_deliver_at_exit)
if hasattr(_os, "register_at_fork"):
    # The child inherits the queue but not the engine's threads: give it a
    # pipeline of its own.
    _os.register_at_fork(after_in_child=_native.after_fork_in_child)
