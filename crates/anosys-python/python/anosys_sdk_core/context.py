"""``anosys_sdk_core.context``: the user context of this context (thread or
asyncio task), and the original's helpers to read it.

Unlike the original's, it is used: OpenAI calls recorded where it is set
carry it, unless a ``get_user_context`` callable was given to
``AnosysOpenAILogger``.
"""

from __future__ import annotations

import contextvars
from typing import Any, Optional

from anosys import clear_user_context, get_user_context, set_user_context

__all__ = [
    "clean_contextvars",
    "clear_user_context",
    "extract_session_id",
    "extract_token",
    "get_user_context",
    "set_user_context",
]


def _field(context: Any, name: str, default: Any) -> Any:
    if isinstance(context, dict):
        return context.get(name, default)
    return getattr(context, name, default)


def extract_session_id(context: Optional[Any] = None) -> str:
    """``session_id`` of ``context`` (a dict or an object; default: the
    current user context), else ``"unknown_session"``."""
    if context is None:
        context = get_user_context()
    if context is None:
        return "unknown_session"
    return _field(context, "session_id", "unknown_session")


def extract_token(context: Optional[Any] = None) -> Optional[str]:
    """``token`` of ``context`` (default: the current user context), else
    ``None``."""
    if context is None:
        context = get_user_context()
    if context is None:
        return None
    return _field(context, "token", None)


def clean_contextvars(obj: Any) -> Any:
    """``obj`` with every ``ContextVar`` in it (inside dicts, lists and
    tuples) replaced by its value (``None`` when unset)."""
    if isinstance(obj, contextvars.ContextVar):
        try:
            return obj.get()
        except LookupError:
            return None
    if isinstance(obj, dict):
        return {key: clean_contextvars(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(clean_contextvars(item) for item in obj)
    return obj
