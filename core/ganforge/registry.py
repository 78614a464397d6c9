"""Registries: the single map from a config's ``name`` to a plugin's config class and factory."""

from __future__ import annotations

import difflib
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


class Registry:
    """All components of one family, by name."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._components: dict[str, Component] = {}

    def add(self, component: Component) -> None:
        taken = self._components.get(component.name)
        if taken is not None:
            raise PluginError(
                f"{self.family} '{component.name}' is registered twice: by "
                f"{taken.provider.describe()} and by {component.provider.describe()}. "
                "Uninstall one of them or rename the component."
            )
        if not attrs.has(component.config):
            raise PluginError(
                f"{component.provider.describe()} registered {self.family} '{component.name}' "
                f"with config {component.config!r}, which is not an attrs class."
            )
        self._components[component.name] = component

    def get(self, name: str) -> Component:
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
