"""OpenTelemetry intake: ``AnosysSpanExporter`` hands the finished spans of
an OpenTelemetry tracer provider to the anosys engine, as the original
AnoSys logger did with "all OpenTelemetry traces".

Spans from any instrumentation (OpenTelemetry's or OpenInference's OpenAI
instrumentation, LangChain, LlamaIndex, your own ``tracer.start_as_current_span``)
become records: name, ids, parent, times, kind, status, events, links,
attributes, resource and scope. A span with ``gen_ai.operation.name`` (a
GenAI instrumentation's) becomes an LLM-call record, the others span
records. They then go wherever anosys sends records (AnoSys, the local
store, OTLP), through the same mapping as the Rust exporter's.

Needs the OpenTelemetry SDK: ``pip install 'anosys[otel]'``.

>>> from opentelemetry.sdk.trace import TracerProvider
>>> from opentelemetry.sdk.trace.export import BatchSpanProcessor
>>> from anosys.otel import AnosysSpanExporter
>>> provider = TracerProvider()
>>> provider.add_span_processor(BatchSpanProcessor(AnosysSpanExporter()))
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence

try:
    from opentelemetry import trace as _trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.trace import SpanKind, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "anosys.otel needs the OpenTelemetry SDK; install it with: pip install 'anosys[otel]'"
    ) from exc

from . import _native, _openai

__all__ = ["AnosysSpanExporter", "setup_tracing"]

_KINDS = {
    SpanKind.INTERNAL: "INTERNAL",
    SpanKind.SERVER: "SERVER",
    SpanKind.CLIENT: "CLIENT",
    SpanKind.PRODUCER: "PRODUCER",
    SpanKind.CONSUMER: "CONSUMER",
}
_CODES = {StatusCode.UNSET: "UNSET", StatusCode.OK: "OK", StatusCode.ERROR: "ERROR"}


def _attributes(attributes: Any) -> Dict[str, Any]:
    if not attributes:
        return {}
    # OpenTelemetry values: str, bool, int, float, or sequences of them.
    return {str(k): (list(v) if isinstance(v, (tuple, list)) else v) for k, v in attributes.items()}


def _trace_state(context: Any) -> Optional[str]:
    state = getattr(context, "trace_state", None)
    return state.to_header() if state else None


def _scope(span: ReadableSpan) -> Optional[Dict[str, Any]]:
    scope = getattr(span, "instrumentation_scope", None) or getattr(span, "instrumentation_info", None)
    if scope is None or not getattr(scope, "name", None):
        return None
    return {"name": scope.name, "version": getattr(scope, "version", None) or None}


def span_dict(span: ReadableSpan) -> Dict[str, Any]:
    """A finished span in the engine's shape (``FinishedSpan``)."""
    context = span.context
    parent = span.parent
    start = span.start_time or 0
    status = span.status
    return {
        "name": span.name,
        "kind": _KINDS.get(span.kind, "INTERNAL"),
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_span_id": format(parent.span_id, "016x") if parent is not None and parent.is_valid else None,
        "trace_flags": int(context.trace_flags),
        "trace_state": _trace_state(context),
        "start_time_unix_nano": start,
        "end_time_unix_nano": span.end_time or start,
        "attributes": _attributes(span.attributes),
        "dropped_attributes_count": getattr(span, "dropped_attributes", 0) or 0,
        "events": [
            {"name": e.name, "time_unix_nano": e.timestamp or start, "attributes": _attributes(e.attributes)}
            for e in span.events
        ],
        "links": [
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
                "trace_state": _trace_state(link.context),
                "attributes": _attributes(link.attributes),
            }
            for link in span.links
            if link.context is not None and link.context.is_valid
        ],
        "status": {
            "code": _CODES.get(status.status_code, "UNSET") if status else "UNSET",
            "description": status.description if status else None,
        },
        "scope": _scope(span),
        "resource": _attributes(span.resource.attributes) if span.resource is not None else None,
    }


class AnosysSpanExporter(SpanExporter):
    """An OpenTelemetry ``SpanExporter`` into the anosys engine.

    ``get_user_context``: called once per export; what it returns (a dict,
    say ``{"session_id": ...}``) is stored with each of the spans' records.
    A span processor may export on a thread of its own (``BatchSpanProcessor``
    does), so it cannot see the context the spans were made in.

    Exporting never fails the application: a span the engine cannot read
    is left out (said once on stderr), a failing ``get_user_context`` is
    recorded as an error note, and delivery problems are the engine's to
    count, as for every record.
    """

    def __init__(self, get_user_context: Optional[Callable[[], Any]] = None) -> None:
        self.get_user_context = get_user_context

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            dicts: List[Dict[str, Any]] = []
            for span in spans:
                try:
                    dicts.append(span_dict(span))
                except Exception:  # a span of an unexpected shape: left out
                    continue
            fn = self.get_user_context
            _native.capture_spans(dicts, None if fn is None else _openai.call_user_context(fn))
        except Exception:
            pass
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        report = _native.flush(max(timeout_millis, 0) / 1000.0)
        return bool(report.get("completed", True)) if isinstance(report, dict) else True

    def shutdown(self) -> None:
        # The engine's pipeline is the process's, shared with the rest of
        # anosys: deliver what it holds, but keep it running.
        _native.flush(5.0)


_setup_lock = threading.Lock()
# Providers setup_tracing has given an exporter: once each.
_traced: "weakref.WeakSet[TracerProvider]" = weakref.WeakSet()


def setup_tracing(
    api_url: Optional[str] = None,
    use_batch_processor: bool = False,
    get_user_context: Optional[Callable[[], Any]] = None,
) -> "TracerProvider":
    """The original SDK's ``setup_tracing``: every span of the global
    OpenTelemetry tracer provider becomes a record, and every ``openai``
    call is recorded.

    - ``api_url``: where records go, as :func:`anosys.setup_api` (``None``:
      ``ANOSYS_API_URL``, or the URL resolved from ``ANOSYS_API_KEY``, or
      the local store; the original required it).
    - An :class:`AnosysSpanExporter` is added to the global SDK
      ``TracerProvider`` (one is made and set global when there is none)
      through a ``SimpleSpanProcessor``, or a ``BatchSpanProcessor`` with
      ``use_batch_processor``. Calling it again adds no second exporter to
      the same provider.
    - ``openai`` calls are recorded by anosys's own instrumentation
      (:func:`anosys.instrument_openai`, with ``get_user_context``) rather
      than by the ``traceai-openai`` spans the original installed.

    Returns the provider.

    >>> from anosys.otel import setup_tracing
    >>> provider = setup_tracing()
    >>> setup_tracing() is provider
    True
    """
    from . import setup_api

    if api_url:
        setup_api(api_url)
    with _setup_lock:
        provider = _trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            _trace.set_tracer_provider(provider)
            # Another thread, or code before us, may have won the race.
            current = _trace.get_tracer_provider()
            if isinstance(current, TracerProvider):
                provider = current
        if provider not in _traced:
            exporter = AnosysSpanExporter(get_user_context)
            processor = BatchSpanProcessor(exporter) if use_batch_processor else SimpleSpanProcessor(exporter)
            provider.add_span_processor(processor)
            _traced.add(provider)
    _openai.instrument_openai(get_user_context)
    return provider
