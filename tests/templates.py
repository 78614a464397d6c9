"""Installing an example distribution from ``examples/`` as a user would (a copy, so that the build
leaves nothing in the checkout), and running ganforge beside it in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=600)


def ganforge(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def run_its_tests(build: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The example's own test suite, run from its installed copy as its author would."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(build / "tests")],
                          capture_output=True, text=True, env=env, cwd=build, timeout=600)


@contextmanager
def installed_copy(template: Path, dist: str, tmp_path: Path) -> Iterator[Path]:
    """``pip install`` a copy of ``template``; yields the copy and uninstalls ``dist`` on leaving."""
    if pip("show", dist).returncode == 0:
        pytest.fail(f"{dist} is already installed; this test installs and removes it itself")
    build = tmp_path / "template"
    subprocess.run(["cp", "-r", str(template), str(build)], check=True)
    done = pip("install", "--no-deps", "--no-build-isolation", "-q", str(build))
    assert done.returncode == 0, done.stderr
    try:
        yield build
    finally:
        pip("uninstall", "-y", "-q", dist)
        assert pip("show", dist).returncode != 0, f"{dist} is still installed"
