"""The installed distribution: the tests import it (not the source tree),
and its metadata is what PyPI shows."""

from __future__ import annotations

import os
import pathlib
import re
import sysconfig
from importlib import metadata

from packaging.requirements import Requirement

import anosys
import anosys_sdk_core
import anosys_sdk_openai
import AnosysLoggers

ROOT = pathlib.Path(__file__).resolve().parents[3]


def workspace_version() -> str:
    """``[workspace.package] version`` of the root Cargo.toml (read with a
    regular expression: tomllib is 3.11+)."""
    text = (ROOT / "Cargo.toml").read_text()
    section = text.split("[workspace.package]", 1)[1].split("\n[", 1)[0]
    return re.search(r'^version\s*=\s*"([^"]+)"', section, re.M).group(1)


def test_imports_the_installed_package_not_the_source_tree():
    site = pathlib.Path(sysconfig.get_paths()["platlib"]).resolve()
    for module in (anosys, anosys._native, AnosysLoggers, anosys_sdk_core, anosys_sdk_openai):
        path = pathlib.Path(module.__file__).resolve()
        assert site in path.parents, f"{module.__name__} imported from {path}, not from {site}"
    files = {str(f) for f in metadata.files("anosys")}
    assert os.path.relpath(pathlib.Path(anosys._native.__file__).resolve(), site) in files


def test_version_is_the_workspace_version():
    version = workspace_version()
    assert metadata.version("anosys") == version
    assert anosys.__version__ == version
    assert anosys._native.ENGINE_VERSION == version


def test_metadata_for_pypi():
    meta = metadata.metadata("anosys")
    assert meta["Name"] == "anosys"
    assert meta["Requires-Python"] == ">=3.9"
    assert meta["License-Expression"] == "MIT OR Apache-2.0"
    assert sorted(meta.get_all("License-File")) == ["LICENSE-APACHE", "LICENSE-MIT"]
    licenses = {pathlib.PurePath(str(f)).name for f in metadata.files("anosys") if "licenses" in str(f)}
    assert licenses == {"LICENSE-APACHE", "LICENSE-MIT"}
    assert meta["Summary"].startswith("LLM observability")
    assert meta["Description-Content-Type"].startswith("text/markdown")
    assert "AnosysOpenAILogger" in meta.get_payload()
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert urls["Repository"] == re.search(r'^repository\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
    classifiers = set(meta.get_all("Classifier"))
    for c in ("Programming Language :: Python :: 3.9", "Programming Language :: Python :: 3.13",
              "Operating System :: POSIX :: Linux", "Topic :: System :: Monitoring", "Typing :: Typed"):
        assert c in classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    otel = {str(r.name): str(r.specifier) for r in map(Requirement, meta.get_all("Requires-Dist"))
            if r.marker and r.marker.evaluate({"extra": "otel"})}
    assert otel == {"opentelemetry-api": ">=1.20", "opentelemetry-sdk": ">=1.20"}
    assert "otel" in meta.get_all("Provides-Extra")


def test_the_examples_in_the_helper_modules_docs_run():
    import doctest

    import anosys.compat
    import anosys.encryption

    for module in (anosys.encryption, anosys.compat):
        failures, tried = doctest.testmod(module)
        assert tried > 0 and failures == 0, module.__name__
