"""Plugin discovery and loading.

Every plugin, first-party or not, is an object exposed through the ``ganforge`` entry-point group
and registered here. Its ``ganforge_register_<family>`` hooks are called once, at registration,
with a ``register`` callable that records the plugin as the provider of what it registers.

Environment:

- ``GANFORGE_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry point except those asked for.
- ``GANFORGE_PLUGINS=a,b``: plugins to load in any case, by entry-point name, distribution name,
  or importable module path (a plugin that is not installed as a distribution).
- ``GANFORGE_STRICT_PLUGINS=1``: a plugin that fails to load is fatal instead of skipped.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import warnings
from collections.abc import Iterable
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError
from .registry import FAMILIES, Component, NameCollision, PluginInfo, Registry

ENTRY_POINT_GROUP = "ganforge"


class PluginLoadWarning(UserWarning):
    """A plugin failed to load and was skipped."""


@attrs.frozen(kw_only=True)
class PluginFailure:
    plugin: PluginInfo
    error: str


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


class PluginManager:
    """Loads plugins and holds one :class:`Registry` per component family."""

    def __init__(self, *, strict: bool | None = None) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.strict = _env_flag("GANFORGE_STRICT_PLUGINS") if strict is None else strict
        self.registries: dict[str, Registry] = {family: Registry(family) for family in FAMILIES}
        self.plugins: list[PluginInfo] = []
        self.failures: list[PluginFailure] = []
        self.conflicts: list[str] = []  # two plugins registering one name (see Registry.add)

    # -- loading --------------------------------------------------------------------------------

    def load(self, requested: Iterable[str] = ()) -> None:
        """Load entry points (all of them unless autoload is disabled) and every requested plugin."""
        requested = [*_env_list("GANFORGE_PLUGINS"), *requested]
        autoload = not _env_flag("GANFORGE_DISABLE_PLUGIN_AUTOLOAD")
        found: set[str] = set()
        seen: set[tuple[str, str]] = set()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if (ep.name, ep.value) in seen:  # one distribution visible twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            dist = ep.dist.name if ep.dist is not None else None
            asked = ep.name in requested or (dist is not None and dist in requested)
            if not (autoload or asked):
                continue
            found.update(n for n in (ep.name, dist) if n is not None and n in requested)
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist,
                version=ep.dist.version if ep.dist is not None else None,
            )
            try:
                obj = ep.load()
            except (Exception, SystemExit) as exc:  # a broken third-party plugin must not take the rest down
                self._fail(info, exc, asked=asked)
                continue
            self.register(obj, info)
        for name in requested:
            if name not in found and self._pm.get_plugin(name) is None:
                self._load_module(name)

    def _load_module(self, module: str) -> None:
        info = PluginInfo(name=module, module=module)
        try:
            obj = importlib.import_module(module)
        except (Exception, SystemExit) as exc:
            self._fail(info, exc, asked=True)
            return
        self.register(obj, info)

    def register(self, plugin: Any, info: PluginInfo) -> None:
        """Register ``plugin`` and run its registration hooks (also for plugins made in code)."""
        if self._pm.is_registered(plugin) or self._pm.get_plugin(info.name) is not None:
            return
        try:
            self._pm.register(plugin, name=info.name)
            self._pm.check_pending()
        except Exception as exc:
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            self._fail(info, exc)
            return
        try:
            for family, hook_name in FAMILIES.items():
                hook = getattr(self._pm.hook, hook_name)
                for impl in hook.get_hookimpls():
                    if impl.plugin is plugin:
                        impl.function(register=self._registrar(family, info))
        except (Exception, SystemExit) as exc:  # its hook raised: none of its components stay half-registered
            for registry in self.registries.values():
                registry.remove_provider(info)
            self._pm.unregister(plugin)
            self._fail(info, exc)
            return
        self.plugins.append(info)

    def _registrar(self, family: str, info: PluginInfo) -> hookspecs.Register:
        registry = self.registries[family]

        def register(name: str, factory: Any, config: type, /) -> None:
            try:
                registry.add(Component(family=family, name=name, factory=factory, config=config, provider=info))
            except NameCollision as exc:
                # the first provider is kept and the rest of this plugin still loads; only runs that
                # name the contested component fail (all of them under GANFORGE_STRICT_PLUGINS)
                if self.strict:
                    raise PluginError(f"{exc} (GANFORGE_STRICT_PLUGINS is set)") from None
                self.conflicts.append(str(exc))
                warnings.warn(str(exc), PluginLoadWarning, stacklevel=2)

        return register

    def _fail(self, info: PluginInfo, exc: BaseException, *, asked: bool = False) -> None:
        if isinstance(exc, PluginError) and self.strict:
            raise exc
        error = f"{type(exc).__name__}: {exc}"
        if asked:  # named by the user (-p NAME, GANFORGE_PLUGINS): going on without it would not be what they asked
            hint = (" (no entry point, distribution or importable module has that name)"
                    if isinstance(exc, ModuleNotFoundError) and getattr(exc, "name", None) == info.module else "")
            raise PluginError(f"{info.describe()} was asked for by name (-p or GANFORGE_PLUGINS) and failed to "
                              f"load: {error}{hint}") from exc
        if self.strict:  # not skipped: the whole load fails
            raise PluginError(f"{info.describe()} failed to load: {error} (GANFORGE_STRICT_PLUGINS is set, so a "
                              "plugin that fails stops ganforge instead of being skipped)") from exc
        message = f"{info.describe()} failed to load and is skipped: {error}"
        self.failures.append(PluginFailure(plugin=info, error=error))
        warnings.warn(message, PluginLoadWarning, stacklevel=3)

    # -- queries --------------------------------------------------------------------------------

    def get(self, family: str, name: str) -> Component:
        return self.registries[family].get(name)

    def components_of(self, info: PluginInfo) -> list[Component]:
        return [c for r in self.registries.values() for c in r if c.provider == info]


_default: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loaded on first use."""
    global _default
    if _default is None:
        manager = PluginManager()
        manager.load()
        _default = manager
    return _default


def set_plugin_manager(manager: PluginManager | None) -> None:
    """Replace the process-wide manager (``None`` reloads on next use); for tests and embedding."""
    global _default
    _default = manager
