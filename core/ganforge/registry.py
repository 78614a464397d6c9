"""Registries: the single map from a config's ``name`` to a plugin's config class and factory."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from .errors import PluginError, UnknownComponentError

FAMILIES: dict[str, str] = {
    "dataset": "ganforge_register_datasets",
    "generator": "ganforge_register_generators",
    "discriminator": "ganforge_register_discriminators",
    "loss": "ganforge_register_losses",
    "regularizer": "ganforge_register_regularizers",
    "sampler": "ganforge_register_samplers",
    "editor": "ganforge_register_editors",
    "callback": "ganforge_register_callbacks",
    "command": "ganforge_register_commands",
    "feature-extractor": "ganforge_register_feature_extractors",
    "metric": "ganforge_register_metrics",
    "scorer": "ganforge_register_scorers",
    "logger": "ganforge_register_loggers",
    "procedure": "ganforge_register_procedures",
    "loss-term": "ganforge_register_loss_terms",
    "layer": "ganforge_register_layers",
    "inversion": "ganforge_register_inversions",
}
"""Component family -> the hook through which plugins fill its registry."""


@attrs.frozen(kw_only=True)
class PluginInfo:
    """Where a plugin came from: its entry-point (or module) name and distribution."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None

    def describe(self) -> str:
        if self.distribution is None:
            return f"plugin '{self.name}' ({self.module})"
        return f"plugin '{self.name}' of {self.distribution} {self.version} ({self.module})"


@attrs.frozen(kw_only=True)
class Component:
    """One registered component: ``factory(config_instance, **context)`` builds it."""

    family: str
    name: str
    factory: Callable[..., Any]
    config: type
    provider: PluginInfo

    @property
    def summary(self) -> str:
        owner = getattr(self.factory, "__self__", None)  # a classmethod factory: use its class's doc
        doc = (self.factory.__doc__ or (owner.__doc__ if owner is not None else "") or "").strip()
        return doc.splitlines()[0] if doc else ""


class NameCollision(PluginError):
    """Two plugins registered the same name in one family."""


class Registry:
    """All components of one family, by name."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._components: dict[str, Component] = {}
        self._contested: dict[str, list[PluginInfo]] = {}

    def add(self, component: Component) -> None:
        """Add ``component``; a name already taken keeps its first provider, becomes contested (every
        lookup of it fails, naming both providers) and raises :class:`NameCollision`."""
        # a name is what a config writes (name = "..."): one word of lower-case letters, digits and - _ . + :
        if not isinstance(component.name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.+:-]*", component.name):
            raise PluginError(
                f"{component.provider.describe()} registered a {self.family} named {component.name!r}; a name is "
                "what configs write, so it must be one word of lower-case letters, digits and - _ . + : "
                "(such as 'my-lsgan')")
        if not attrs.has(component.config):
            raise PluginError(
                f"{component.provider.describe()} registered {self.family} '{component.name}' "
                f"with config {component.config!r}, which is not an attrs class."
            )
        taken = self._components.get(component.name)
        if taken is not None:
            self._contested.setdefault(component.name, [taken.provider]).append(component.provider)
            raise NameCollision(self._contested_message(component.name))
        self._components[component.name] = component

    def remove_provider(self, provider: PluginInfo) -> None:
        """Forget what ``provider`` registered (a plugin whose registration failed part way)."""
        for name in [n for n, c in self._components.items() if c.provider == provider]:
            del self._components[name]

    def _contested_message(self, name: str) -> str:
        providers = " and by ".join(p.describe() for p in self._contested[name])
        return (f"{self.family} '{name}' is registered twice: by {providers}. Uninstall one of them or rename "
                "the component; until then a run that names it is refused")

    def get(self, name: str) -> Component:
        if name in self._contested:
            raise PluginError(self._contested_message(name))
        try:
            return self._components[name]
        except KeyError:
            raise UnknownComponentError(self.unknown_message(name)) from None

    def unknown_message(self, name: object) -> str:
        choices = sorted(self._components)
        msg = f"unknown {self.family} {name!r}; choose one of: {', '.join(choices) or '(none registered)'}"
        close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
        if close:
            msg += f" (did you mean {close[0]!r}?)"
        return msg

    def names(self) -> list[str]:
        return sorted(self._components)

    def __contains__(self, name: object) -> bool:
        return name in self._components

    def __iter__(self) -> Iterator[Component]:
        return iter(self._components[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._components)
