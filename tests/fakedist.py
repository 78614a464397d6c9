"""Fake installed distributions: a ``*.dist-info`` with entry points on ``sys.path``, exactly what
``pip install`` leaves behind, so that plugin discovery is tested through importlib.metadata."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ganforge.manager import PluginManager


def install_fake_dist(
    site: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    name: str,
    version: str = "1.0",
    entry_points: dict[str, str],
    modules: dict[str, str],
) -> None:
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "\n".join(f"{ep} = {target}" for ep, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[ganforge]\n{lines}\n")
    if str(site) not in sys.path:
        monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    for module in modules:
        monkeypatch.delitem(sys.modules, module, raising=False)


def installed_plugin_manager(site: Path, monkeypatch: pytest.MonkeyPatch, *, name: str, module: str,
                             source: str) -> Iterator[PluginManager]:
    """Install one fake distribution whose module ``module`` is ``source``, and make a plugin
    manager that loaded it the process-wide one while the caller's fixture is active."""
    from ganforge.manager import PluginManager, set_plugin_manager

    install_fake_dist(site, monkeypatch, name=name, entry_points={module: module}, modules={module: source})
    manager = PluginManager()
    manager.load()
    set_plugin_manager(manager)
    try:
        yield manager
    finally:
        set_plugin_manager(None)
