"""Instrumentation of the official ``openai`` package.

Patches the resource methods every client (sync and async, created before
or after) goes through: ``chat.completions.create``, ``embeddings.create``,
``images.generate`` and ``responses.create``. Requests and responses are
handed to the Rust engine as they are; extraction of the GenAI attributes
and aggregation of streamed chunks happen there, in the same code the Rust
client and the proxy use.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import _native
from ._decorator import parent as _parent

_MARK = "__anosys_wrapped__"
_lock = threading.Lock()
_patched: List[Tuple[type, str, Any]] = []
_user_context: Optional[Callable[[], Any]] = None

#: (module, sync class, async class, method, API path)
_TARGETS = [
    ("openai.resources.chat.completions", "Completions", "AsyncCompletions", "create", "chat/completions"),
    ("openai.resources.embeddings", "Embeddings", "AsyncEmbeddings", "create", "embeddings"),
    ("openai.resources.images", "Images", "AsyncImages", "generate", "images/generations"),
    ("openai.resources.responses", "Responses", "AsyncResponses", "create", "responses"),
]

# Arguments of `create` that shape the HTTP request rather than its body.
_TRANSPORT_ARGS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})


class AnosysOpenAILogger:
    """Record every call the ``openai`` package makes.

    ``AnosysOpenAILogger()`` instruments ``chat.completions.create`` (plain
    and streamed: iteration, async iteration, ``with``, an early ``break`` or
    ``close()``), ``embeddings.create``, ``images.generate`` and
    ``responses.create`` on every ``OpenAI``, ``AsyncOpenAI`` and
    ``AzureOpenAI`` client. Creating it again does not record twice; it
    only replaces ``get_user_context``.

    ``get_user_context``: called on each call; what it returns (a dict, say
    ``{"user_id": ..., "session_id": ...}``) is stored with the record.
    Without it, what :func:`set_user_context` set in the caller's context
    is.

    >>> from anosys import AnosysOpenAILogger
    >>> logger = AnosysOpenAILogger(get_user_context=lambda: {"user_id": "u-42"})
    >>> logger.instrumented
    True
    """

    def __init__(self, get_user_context: Optional[Callable[[], Any]] = None) -> None:
        self.get_user_context = get_user_context
        self.instrumented = instrument_openai(get_user_context)


def instrument_openai(get_user_context: Optional[Callable[[], Any]] = None) -> bool:
    """Patch the ``openai`` package (idempotent). Returns whether it is
    instrumented (``False`` when ``openai`` is not installed)."""
    global _user_context, _context_readers
    _user_context = get_user_context
    _context_readers = None
    with _lock:
        ok = False
        for module_name, sync_name, async_name, method, path in _TARGETS:
            try:
                module = importlib.import_module(module_name)
            except Exception:
                continue
            for cls_name, is_async in ((sync_name, False), (async_name, True)):
                cls = getattr(module, cls_name, None)
                original = getattr(cls, method, None) if cls is not None else None
                if original is None:
                    continue
                ok = True
                if getattr(original, _MARK, False):
                    continue
                wrapped = _wrap_async(original, path) if is_async else _wrap_sync(original, path)
                setattr(wrapped, _MARK, True)
                setattr(cls, method, wrapped)
                _patched.append((cls, method, original))
        if ok:
            _patch_parse()
        return ok


def _patch_parse() -> None:
    """Remember, for the call that asked for it, which raw response each
    parsed reply came from (``openai._response.BaseAPIResponse._parse``)."""
    try:
        from openai._response import BaseAPIResponse
    except Exception:
        return
    original = getattr(BaseAPIResponse, "_parse", None)
    if original is None or getattr(original, _MARK, False):
        return

    # The reply with the bodies and status it came with, kept on this
    # thread, nothing else checked here (this runs for every call the client
    # makes): the wrapped method uses them only when the reply is the very
    # object it returns to its caller. The call and the keeping in one
    # native method (``_native.ParseHook``), no Python frame of its own.
    _parse = functools.update_wrapper(_native.ParseHook(original), original)
    setattr(_parse, _MARK, True)
    BaseAPIResponse._parse = _parse
    _patched.append((BaseAPIResponse, "_parse", original))


def uninstrument_openai() -> None:
    """Undo :func:`instrument_openai`."""
    with _lock:
        while _patched:
            cls, method, original = _patched.pop()
            setattr(cls, method, original)


#: The user context of calls made in this context (thread, task), for
#: when no ``get_user_context`` callable was given.
_context_user: contextvars.ContextVar[Optional[Dict[str, Any]]] = contextvars.ContextVar(
    "anosys_user_context", default=None
)


def set_user_context(context: Optional[Dict[str, Any]]) -> None:
    """The user context (a dict, say ``{"session_id": ..., "user_id": ...}``)
    stored with the OpenAI calls recorded from now on in this context (the
    thread, or the asyncio task and the tasks it starts), unless
    :class:`AnosysOpenAILogger` was given a ``get_user_context`` callable,
    which then wins. ``None`` clears it. The original SDK's function of the
    same name.

    >>> from anosys import get_user_context, set_user_context
    >>> set_user_context({"session_id": "s-1", "user_id": "u-42"})
    >>> get_user_context()
    {'session_id': 's-1', 'user_id': 'u-42'}
    >>> set_user_context(None)
    """
    _context_user.set(context)


def get_user_context() -> Optional[Dict[str, Any]]:
    """The user context :func:`set_user_context` set in this context, or
    ``None``."""
    return _context_user.get()


def clear_user_context() -> None:
    """``set_user_context(None)``."""
    _context_user.set(None)


def call_user_context(fn: Callable[[], Any]) -> Any:
    """What a user's ``get_user_context`` returns; an exception in it
    becomes an error note in its place (it never breaks the call)."""
    try:
        return fn()
    except Exception as exc:
        return {"anosys.user_context_error": f"{type(exc).__name__}: {exc}"}


def _user() -> Any:
    fn = _user_context
    if fn is None:
        return _context_user.get()
    return call_user_context(fn)


#: What ``_native.PatchedMethod`` reads the parent and the user context
#: through, in the call's own context: five callables of no argument (the
#: decorated call's ContextVar's ``get``, OpenTelemetry's context
#: ContextVar's ``get`` or None, the parent's reader or None, the user
#: context's ContextVar's ``get`` or None, the user context's reader or
#: None). Made on first use, and again after :func:`instrument_openai`
#: (which may change ``get_user_context``).
_context_readers: Optional[Tuple[Any, Any, Any, Any, Any]] = None


def _make_context_readers() -> Tuple[Any, Any, Any, Any, Any]:
    global _context_readers
    from . import _decorator

    parent_fn: Any = None
    otel_get: Any = None
    if _decorator._otel_api():
        parent_fn = _parent
        try:
            # OpenTelemetry's default runtime context keeps the current
            # context in a ContextVar: an empty one (no span started) is
            # then told apart without going through its API.
            from opentelemetry.context import _RUNTIME_CONTEXT

            var = getattr(_RUNTIME_CONTEXT, "_current_context", None)
            if isinstance(var, contextvars.ContextVar):
                otel_get = var.get
        except Exception:
            pass
    # The ContextVars' `get` bound once: the engine calls them directly.
    if _user_context is None:
        readers = (_decorator._current.get, otel_get, parent_fn, _context_user.get, None)
    else:
        readers = (_decorator._current.get, otel_get, parent_fn, None, _user)
    _context_readers = readers
    return readers


def _native_call(sent: float, url: str, kwargs: Dict[str, Any]) -> _native.OpenAICall:
    """The engine's ``OpenAICall`` for a call through a wrapped method that
    is not recorded in one step (a stream, an error, a raw response, a reply
    openai did not parse from a body), as if started at ``sent``
    (``time.perf_counter()``), with the request from `create`'s keyword
    arguments. A plain reply openai parsed is recorded in one step instead
    (``_native.PatchedMethod``)."""
    return _native.OpenAICall(url, _request(kwargs), None, _parent(), _user(), time.perf_counter() - sent)


def _request(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The request body, from `create`'s keyword arguments."""
    request = {k: v for k, v in kwargs.items() if k not in _TRANSPORT_ARGS and not _is_omitted(v)}
    extra = kwargs.get("extra_body")
    if isinstance(extra, dict):
        request.update(extra)
    return request


def _is_omitted(value: Any) -> bool:
    # openai's NOT_GIVEN / omit sentinels
    return type(value).__name__ in ("NotGiven", "Omit")


def _record_error(sent: float, url: str, kwargs: Dict[str, Any], exc: BaseException) -> None:
    try:
        response = getattr(exc, "response", None)
        status = getattr(exc, "status_code", None)
        body: Any = None
        if response is not None and status is not None:
            try:
                body = response.content
            except Exception:
                body = getattr(exc, "body", None)
        _native_call(sent, url, kwargs).fail(type(exc).__name__, str(exc), status, body)
    except Exception:
        pass


def _record_other(elapsed: float, url: str, kwargs: Dict[str, Any], result: Any, done: Any) -> None:
    """``_record_general`` for ``_native.PatchedMethod``, which says how many
    seconds ago the call began; never raises."""
    try:
        _record_general(time.perf_counter() - elapsed, url, kwargs, result, done)
    except Exception:
        pass


def _record_error_after(elapsed: float, url: str, kwargs: Dict[str, Any], exc: BaseException) -> None:
    """``_record_error`` for ``_native.PatchedMethod``, which says how many
    seconds ago the call began; never raises."""
    _record_error(time.perf_counter() - elapsed, url, kwargs, exc)


def _record_general(sent: float, url: str, kwargs: Dict[str, Any], result: Any, done: Any) -> None:
    """Records a call that ``_native.PatchedMethod`` did not record in one
    step (``done``: ``False``, or the reply's ``(body, status)`` when the
    request body as sent was not kept), or hooks its stream."""
    if done:
        # The request body as sent was not kept (streamed from a file): the
        # request from `create`'s arguments instead.
        body, status = done
        _native.record_openai_call(url, _request(kwargs), time.perf_counter() - sent, body, status, _parent(), _user())
        return
    handle = _native_call(sent, url, kwargs)
    raw = getattr(result, "http_response", None)
    if raw is not None:  # `.with_raw_response`
        if handle.streaming:
            handle.finish({}, raw.status_code)
        else:
            handle.finish(raw.content, raw.status_code)
    elif handle.streaming and hasattr(result, "response"):
        _hook_stream(handle, result)
    else:
        handle.finish(result)


def _stream_error(call: _native.OpenAICall, exc: BaseException, raw: bool) -> None:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and getattr(exc, "status_code", None) is None:
        # an error event in the middle of the stream (already seen when the
        # events are recorded raw)
        if not raw:
            call.push_chunk({"error": body})
        call.end_stream()
    else:
        call.fail(type(exc).__name__, str(exc))


def _recorded(call: _native.OpenAICall, iterator: Any, raw: bool) -> Any:
    try:
        for chunk in iterator:
            if not raw:
                call.push_chunk(chunk)
            yield chunk
    except GeneratorExit:
        call.cancel()
        raise
    except BaseException as exc:
        _stream_error(call, exc, raw)
        raise
    call.end_stream()


async def _arecorded(call: _native.OpenAICall, iterator: Any, raw: bool) -> Any:
    try:
        async for chunk in iterator:
            if not raw:
                call.push_chunk(chunk)
            yield chunk
    except GeneratorExit:
        call.cancel()
        raise
    except BaseException as exc:
        _stream_error(call, exc, raw)
        raise
    call.end_stream()


def _hook_events(call: _native.OpenAICall, stream: Any, is_async: bool) -> bool:
    """Hands each server-sent event's JSON text to the engine as it is
    parsed, before openai builds its object: no serialising it back.
    Returns ``False`` when this openai version has no such hook (the
    objects are then recorded as they come out)."""
    events = getattr(stream, "_iter_events", None)
    if not callable(events):
        return False
    if is_async:

        async def aiter_events() -> Any:
            async for sse in events():
                data = sse.data
                if data and not data.startswith("[DONE]"):
                    call.push_chunk(data)
                yield sse

        stream._iter_events = aiter_events
    else:

        def iter_events() -> Any:
            for sse in events():
                data = sse.data
                if data and not data.startswith("[DONE]"):
                    call.push_chunk(data)
                yield sse

        stream._iter_events = iter_events
    return True


def _hook_stream(call: _native.OpenAICall, stream: Any) -> None:
    """Records the chunks of an ``openai.Stream`` / ``AsyncStream`` as the
    caller reads them, keeping the object (and its type) the caller gets."""
    inner = getattr(stream, "_iterator", None)
    if inner is None:
        call.finish({}, 200)
        return
    is_async = hasattr(inner, "__anext__")
    raw = _hook_events(call, stream, is_async)
    close = stream.close
    if is_async:
        stream._iterator = _arecorded(call, inner, raw)

        async def aclose() -> None:
            try:
                await close()
            finally:
                call.cancel()

        stream.close = aclose
    else:
        stream._iterator = _recorded(call, inner, raw)

        def sclose() -> None:
            try:
                close()
            finally:
                call.cancel()

        stream.close = sclose


def _wrap_sync(original: Any, path: str) -> Any:
    # The call, its timing and its record in one native method
    # (``_native.PatchedMethod``), named and documented as the original; no
    # Python frame of its own on every call.
    return functools.update_wrapper(_native.PatchedMethod(original, path, sys.modules[__name__]), original)


def _wrap_async(original: Any, path: str) -> Any:
    # A coroutine around the original's; the URL and the record are the
    # same native method's as a sync call's.
    method = _native.PatchedMethod(original, path, sys.modules[__name__])

    @functools.wraps(original)
    async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent = time.perf_counter()
        try:
            url = method.url(self)
        except Exception:
            return await original(self, *args, **kwargs)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            _record_error(sent, url, kwargs, exc)
            raise
        try:
            method.record(time.perf_counter() - sent, url, kwargs, result)
        except Exception:
            pass
        return result

    return create
