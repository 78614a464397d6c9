"""ganforge: a GAN engine built from plugins.

The public API for plugin authors is what this module exports: the hook marker, the protocols
components implement, and the small records passed to them. Everything else is internal.
"""

from __future__ import annotations

from .config import Choice, RunConfig, load_config
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    GanforgeError,
    OutputError,
    PluginError,
    UnknownComponentError,
)
from .hookspecs import Register, hookimpl
from .manager import PluginManager, get_plugin_manager
from .protocols import (
    AuxiliaryClassifier,
    Constraint,
    Dataset,
    DataSpec,
    Discriminator,
    Editor,
    Generator,
    LatentSpace,
    Loss,
    Penalty,
    PenaltyContext,
    Regularizer,
    Sampler,
    StyleGenerator,
    Translator,
)
from .validators import power_of_two

__version__ = "0.1.0"

__all__ = [
    "AuxiliaryClassifier",
    "CheckpointError",
    "Choice",
    "ConfigError",
    "Constraint",
    "DataError",
    "DataSpec",
    "Dataset",
    "Discriminator",
    "Editor",
    "GanforgeError",
    "Generator",
    "LatentSpace",
    "Loss",
    "OutputError",
    "Penalty",
    "PenaltyContext",
    "PluginError",
    "PluginManager",
    "Register",
    "Regularizer",
    "RunConfig",
    "Sampler",
    "StyleGenerator",
    "Translator",
    "UnknownComponentError",
    "get_plugin_manager",
    "hookimpl",
    "load_config",
    "power_of_two",
]
