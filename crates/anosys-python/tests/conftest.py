"""Starts the loopback upstream and AnoSys stand-in once, and points the
package at them before it is imported (the pipeline reads its
configuration from the environment on first use)."""

from __future__ import annotations

import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from servers import Backend, Upstream  # noqa: E402

BACKEND = Backend()
UPSTREAM = Upstream()
os.environ["ANOSYS_API_URL"] = BACKEND.url + "/log"
os.environ.pop("ANOSYS_API_KEY", None)
os.environ["ANOSYS_FLUSH_INTERVAL_MS"] = "20"
os.environ["ANOSYS_DB"] = os.path.join(tempfile.mkdtemp(prefix="anosys-pytest-"), "fallback.db")


@pytest.fixture(scope="session")
def backend() -> Backend:
    return BACKEND


@pytest.fixture(scope="session")
def upstream() -> Upstream:
    return UPSTREAM


@pytest.fixture(scope="session")
def openai_clients(upstream):
    import openai

    kwargs = dict(api_key="sk-test-not-a-real-key", base_url=upstream.url + "/v1", max_retries=0)
    # An async client's connections belong to one event loop: each test's
    # asyncio.run gets its own client.
    return openai.OpenAI(**kwargs), lambda: openai.AsyncOpenAI(**kwargs)
