"""``anosys_sdk_openai.instrumentor``: the original's ``AnosysOpenAILogger``,
``setup_tracing`` and ``AnosysHttpExporter``, over anosys.

``AnosysOpenAILogger()`` records every ``openai`` call (anosys's own
instrumentation) and, as the original did, every span of the global
OpenTelemetry tracer provider (:func:`anosys.otel.setup_tracing`) when the
OpenTelemetry SDK is installed (``pip install 'anosys[otel]'``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import anosys
from anosys.compat import resolve_api_key

__all__ = ["AnosysHttpExporter", "AnosysOpenAILogger", "setup_tracing"]


def setup_tracing(
    api_url: Optional[str] = None,
    use_batch_processor: bool = False,
    get_user_context: Optional[Callable[[], Any]] = None,
) -> Any:
    """:func:`anosys.otel.setup_tracing` (needs the OpenTelemetry SDK)."""
    from anosys.otel import setup_tracing as _setup_tracing

    return _setup_tracing(api_url, use_batch_processor, get_user_context)


class AnosysOpenAILogger(anosys.AnosysOpenAILogger):
    """The original's logger: :class:`anosys.AnosysOpenAILogger` and, with
    the OpenTelemetry SDK installed, :func:`setup_tracing`, so that the
    spans of other instrumentations (LangChain, LlamaIndex, ...) are
    recorded too."""

    def __init__(self, get_user_context: Optional[Callable[[], Any]] = None) -> None:
        super().__init__(get_user_context)
        self.tracing = False
        try:
            setup_tracing(None, get_user_context=get_user_context)
            self.tracing = True
        except ImportError:  # no OpenTelemetry SDK: openai calls only
            pass

    @property
    def log_api_url(self) -> str:
        """The AnoSys URL: ``ANOSYS_API_URL``, else resolved from
        ``ANOSYS_API_KEY`` (asked when read; the original asked in
        ``__init__``)."""
        import os

        return os.environ.get("ANOSYS_API_URL") or resolve_api_key()


def __getattr__(name: str) -> Any:
    # The exporter needs the OpenTelemetry SDK: imported when asked for.
    if name == "AnosysHttpExporter":
        from anosys.otel import AnosysSpanExporter

        return AnosysSpanExporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
