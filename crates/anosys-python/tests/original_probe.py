"""Asks an installation of the AnoSys SDK's import names (``anosys_sdk_core``,
``anosys_sdk_openai``) questions, and prints the answers as JSON: run with
the original SDK's Python and with this package's, on the same questions,
by test_original_api.py, which compares the two.

stdin: a JSON list of questions, each ``{"ask": ..., ...}``:
- ``names``: the public names of ``module`` (its ``__all__``, else the
  public functions, classes and constants defined in it);
- ``module_of``: the module each name of ``module``'s ``__all__`` is
  defined in;
- ``signature``: the parameters (name, kind, default) of ``module.name``
  (a class: its ``__init__``);
- ``call``: ``module.name(*args, **kwargs)`` with ``env`` set and ``unset``
  removed for the call; bytes travel as ``{"bytes": hex}``.
- ``value``: ``module.name``.
- ``user_context``: ``set_user_context(value)`` then ``get_user_context()``
  and the ``extract_*`` helpers, in a fresh context.

Every answer is ``{"ok": ...}`` or ``{"error": exception type name}``.
"""

from __future__ import annotations

import ast
import contextvars
import importlib
import inspect
import io
import json
import logging
import os
import sys
import types
from typing import Any, Dict


def encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, (set, frozenset)):
        return {"set": sorted(encode(v) for v in value)}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"object": type(value).__name__}


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"bytes"}:
            return bytes.fromhex(value["bytes"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def public_names(module: types.ModuleType) -> list:
    """``__all__``, else the public functions, classes and variables the
    module's source defines at its top level (not those it imports), less
    loggers."""
    if hasattr(module, "__all__"):
        return sorted(module.__all__)
    names = []
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return sorted(
        n for n in set(names) if not n.startswith("_") and not isinstance(getattr(module, n, None), logging.Logger)
    )


def signature(obj: Any) -> list:
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = []
    for p in inspect.signature(target).parameters.values():
        if p.name == "self":
            continue
        default = None if p.default is inspect.Parameter.empty else {"default": encode(p.default)}
        params.append([p.name, p.kind.name, default])
    return params


def answer(question: Dict[str, Any]) -> Any:
    ask = question["ask"]
    module = importlib.import_module(question["module"])
    if ask == "names":
        return public_names(module)
    if ask == "module_of":
        return {name: getattr(getattr(module, name), "__module__", None) for name in module.__all__}
    if ask == "signature":
        return signature(getattr(module, question["name"]))
    if ask == "value":
        return encode(getattr(module, question["name"]))
    if ask == "call":
        saved = dict(os.environ)
        os.environ.update(question.get("env", {}))
        for name in question.get("unset", []):
            os.environ.pop(name, None)
        try:
            fn = getattr(module, question["name"])
            return encode(fn(*decode(question.get("args", [])), **decode(question.get("kwargs", {}))))
        finally:
            os.environ.clear()
            os.environ.update(saved)
    if ask == "user_context":

        def run() -> Any:
            module.set_user_context(question["value"])
            return [module.get_user_context(), module.extract_session_id(), module.extract_token()]

        return encode(contextvars.copy_context().run(run))
    raise ValueError(f"unknown question {ask}")


def main() -> None:
    questions = json.load(sys.stdin)
    answers = []
    # What the SDKs print (warnings) stays out of the JSON on stdout.
    real_stdout, sys.stdout = sys.stdout, io.StringIO()
    for question in questions:
        try:
            answers.append({"ok": answer(question)})
        except Exception as exc:
            answers.append({"error": type(exc).__name__})
    sys.stdout = real_stdout
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
