"""The installed distribution: the tests import it, not the source tree."""

from __future__ import annotations

import os
import pathlib
import sysconfig
from importlib import metadata

import anosys
import AnosysLoggers


def test_imports_the_installed_package_not_the_source_tree():
    site = pathlib.Path(sysconfig.get_paths()["platlib"]).resolve()
    for module in (anosys, anosys._native, AnosysLoggers):
        path = pathlib.Path(module.__file__).resolve()
        assert site in path.parents, f"{module.__name__} imported from {path}, not from {site}"
    files = {str(f) for f in metadata.files("anosys")}
    assert os.path.relpath(pathlib.Path(anosys._native.__file__).resolve(), site) in files
