"""``@anosys_logger``: one record per call of a function, coroutine,
generator or async generator."""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import traceback
from contextvars import ContextVar
from typing import Any, Callable, List, Optional, TypeVar, overload

from . import _native

F = TypeVar("F", bound=Callable[..., Any])

_current: ContextVar[Optional[_native.FunctionCall]] = ContextVar("anosys_current_call", default=None)

#: A generator's output keeps at most this many yielded items.
MAX_ITEMS = 10_000


def current_call() -> Optional[_native.FunctionCall]:
    """The decorated call running in this context, if any: records made
    inside it (OpenAI calls, nested decorated functions) are its children."""
    return _current.get()


# OpenTelemetry's API, when installed: (trace, context), or False.
_otel: Any = None


def _otel_api() -> Any:
    global _otel
    if _otel is None:
        try:
            from opentelemetry import context, trace

            _otel = (trace, context)
        except Exception:
            _otel = False
    return _otel


def parent() -> Any:
    """What a record made here is the child of: the innermost of the
    decorated call and the OpenTelemetry span running in this context (a
    ``FunctionCall``, a ``(trace_id, span_id)`` pair in hex, or ``None``)."""
    call = _current.get()
    api = _otel_api()
    if not api:
        return call
    try:
        current = api[1].get_current()
        # An empty OpenTelemetry context (OpenTelemetry installed, no span
        # started): nothing more to look up.
        if not current:
            return call
        context = api[0].get_current_span(current).get_span_context()
    except Exception:
        return call
    if not context.is_valid:
        return call
    span_id = format(context.span_id, "016x")
    if call is not None and call.span_id == span_id:
        return call
    return (format(context.trace_id, "032x"), span_id)


def _enter(call: Optional[_native.FunctionCall]) -> Any:
    """Makes ``call`` the current one, for anosys and, when OpenTelemetry is
    installed, as OpenTelemetry's current span (a non-recording span with
    its ids), so that spans started inside are its children."""
    token = _current.set(call)
    api = _otel_api()
    if not api or call is None:
        return (token, None)
    trace, context = api
    try:
        span = trace.NonRecordingSpan(
            trace.SpanContext(
                trace_id=int(call.trace_id, 16),
                span_id=int(call.span_id, 16),
                is_remote=False,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            )
        )
        return (token, context.attach(trace.set_span_in_context(span)))
    except Exception:
        return (token, None)


def _leave(tokens: Any) -> None:
    token, otel_token = tokens
    if otel_token is not None:
        try:
            _otel_api()[1].detach(otel_token)
        except Exception:
            pass
    _current.reset(token)


def _error_type(exc: BaseException) -> str:
    t = type(exc)
    if t.__module__ in ("builtins", "__main__"):
        return t.__qualname__
    return f"{t.__module__}.{t.__qualname__}"


def _fail(call: _native.FunctionCall, exc: BaseException, output: Any = None) -> None:
    try:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        call.fail(_error_type(exc), str(exc), tb, output)
    except Exception:  # capture never breaks the caller
        pass


def _start(meta: tuple, frame: Any, args: tuple, kwargs: dict) -> Optional[_native.FunctionCall]:
    name, source, file, line = meta
    try:
        if frame is not None:
            code = frame.f_code
            caller = (getattr(code, "co_qualname", code.co_name), code.co_filename, frame.f_lineno)
        else:
            caller = (None, "", 0)
        return _native.FunctionCall(name, source, file, line, caller[0], caller[1], caller[2], parent(), args, kwargs)
    except Exception:
        return None


def _caller_frame() -> Any:
    try:
        return sys._getframe(2)
    except (AttributeError, ValueError):
        return None


@overload
def anosys_logger(source: F) -> F: ...
@overload
def anosys_logger(source: Optional[str] = None) -> Callable[[F], F]: ...


def anosys_logger(source: Any = None) -> Any:
    """Record every call of the decorated function.

    Each call becomes one record with the inputs (``args`` and ``kwargs``),
    the output (for generators: the yielded items), the caller (function,
    file and line), the duration, and, when it raises, the error type,
    message and traceback; the exception is then re-raised unchanged.
    Works on functions, ``async`` functions, generators and async
    generators. Calls made inside (OpenAI calls, other decorated functions)
    become its children in the same trace.

    ``source`` names the part of the application (default: the function's
    module). ``@anosys_logger`` without parentheses works too.

    >>> @anosys_logger(source="math")
    ... def add(a, b):
    ...     return a + b
    >>> add(2, b=3)
    5
    """
    if callable(source) and not isinstance(source, str):
        return anosys_logger()(source)

    def decorate(fn: F) -> F:
        target = inspect.unwrap(fn)
        code = getattr(target, "__code__", None)
        module = getattr(fn, "__module__", None) or "__main__"
        qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
        meta = (
            f"{module}.{qualname}",
            source or module,
            code.co_filename if code else "",
            code.co_firstlineno if code else 0,
        )

        if inspect.isasyncgenfunction(fn):
            return _generator_wrapper(fn, meta, _traced_agen)  # type: ignore[return-value]

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                # Awaited directly, the frame below is the awaiting coroutine.
                try:
                    frame = sys._getframe(1)
                except (AttributeError, ValueError):
                    frame = None
                call = _start(meta, frame, args, kwargs)
                if call is None:
                    return await fn(*args, **kwargs)
                token = _enter(call)
                try:
                    result = await fn(*args, **kwargs)
                except asyncio.CancelledError:
                    call.cancel()
                    raise
                except BaseException as exc:
                    _fail(call, exc)
                    raise
                finally:
                    _leave(token)
                call.finish(result)
                return result

            return async_wrapper  # type: ignore[return-value]

        if inspect.isgeneratorfunction(fn):
            return _generator_wrapper(fn, meta, _traced_gen)  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = _start(meta, _caller_frame(), args, kwargs)
            if call is None:
                return fn(*args, **kwargs)
            token = _enter(call)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                _fail(call, exc)
                raise
            finally:
                _leave(token)
            call.finish(result)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


def _generator_wrapper(fn: Callable[..., Any], meta: tuple, traced: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    """Wraps a generator (or async generator) function: the call starts
    when the generator is made (its caller is who made it) and runs until
    ``traced`` sees it finish, fail or close."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _start(meta, _caller_frame(), args, kwargs)
        token = _enter(call)
        try:
            gen = fn(*args, **kwargs)
        finally:
            _leave(token)
        return gen if call is None else traced(call, gen)

    return wrapper


def _traced_gen(call: _native.FunctionCall, gen: Any) -> Any:
    """Runs ``gen`` as the call: forwards ``send``/``throw``/``close`` and
    ends the record when the generator finishes, raises or is closed."""
    items: List[Any] = []
    sent: Any = None
    thrown: Optional[BaseException] = None
    while True:
        token = _enter(call)
        try:
            if thrown is not None:
                exc, thrown = thrown, None
                item = gen.throw(exc)
            else:
                item = gen.send(sent)
        except StopIteration as stop:
            call.finish(items if stop.value is None else {"yielded": items, "returned": stop.value})
            return stop.value
        except BaseException as exc:
            _fail(call, exc, items)
            raise
        finally:
            _leave(token)
        if len(items) < MAX_ITEMS:
            items.append(item)
        try:
            sent = yield item
        except GeneratorExit:
            try:
                gen.close()
            finally:
                call.cancel(items)
            raise
        except BaseException as exc:
            thrown = exc


async def _traced_agen(call: _native.FunctionCall, agen: Any) -> Any:
    """The async-generator form of :func:`_traced_gen`."""
    items: List[Any] = []
    sent: Any = None
    thrown: Optional[BaseException] = None
    while True:
        token = _enter(call)
        try:
            if thrown is not None:
                exc, thrown = thrown, None
                item = await agen.athrow(exc)
            else:
                item = await agen.asend(sent)
        except StopAsyncIteration:
            call.finish(items)
            return
        except asyncio.CancelledError:
            call.cancel(items)
            raise
        except BaseException as exc:
            _fail(call, exc, items)
            raise
        finally:
            _leave(token)
        if len(items) < MAX_ITEMS:
            items.append(item)
        try:
            sent = yield item
        except GeneratorExit:
            try:
                await agen.aclose()
            finally:
                call.cancel(items)
            raise
        except BaseException as exc:
            thrown = exc
