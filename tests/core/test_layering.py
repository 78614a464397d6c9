"""The core stays small and clean: no plugin imports, ruff and mypy pass."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

CORE = REPO / "core" / "ganforge"


def imported_modules(path: str) -> set[str]:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_core_imports_nothing_from_plugins() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 5
    offenders = {
        str(f.relative_to(REPO)): sorted(m for m in imported_modules(str(f)) if m.split(".")[0] == "ganforge_plugins")
        for f in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_plugins_import_only_the_public_api() -> None:
    for f in sorted((REPO / "plugins").rglob("*.py")):
        private = sorted(m for m in imported_modules(str(f)) if m.startswith("ganforge."))
        assert private == [], f"{f.relative_to(REPO)} imports ganforge internals: {private}"


def test_ruff_is_clean_on_core() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is part of the test extras: pip install -e '.[test]'")
    proc = subprocess.run([ruff, "check", str(CORE)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean_on_core() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
