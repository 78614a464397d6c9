"""ganforge: a GAN engine built from plugins.

The public API for plugin authors is what this module exports: the hook marker, the protocols
components implement, and the small records passed to them. Everything else is internal.
"""

from __future__ import annotations

from .checkpoint import Checkpoint, atomic_write, atomic_write_text, load_checkpoint, save_checkpoint
from .config import (
    Choice,
    DiscriminatorChoice,
    GeneratorChoice,
    LossChoice,
    RegularizerChoice,
    RunConfig,
    dump_toml,
    linear_decay,
    load_config,
    load_settings,
    make_converter,
    read_toml,
    structure_as,
)
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
from .images import save_array, save_samples, to_unit
from .manager import PluginManager, get_plugin_manager, set_plugin_manager
from .protocols import (
    AttributeScorer,
    AuxiliaryClassifier,
    Callback,
    Command,
    Constraint,
    Dataset,
    DataSpec,
    Discriminator,
    Editor,
    FeatureExtractor,
    Generator,
    LatentSpace,
    Logger,
    Loss,
    Metric,
    Penalty,
    PenaltyContext,
    Progressive,
    Regularizer,
    Sampler,
    StyleGenerator,
    TrainingRun,
    Translator,
)
from .training import TrainedGenerator, Trainer, load_generator, resolve_device
from .validators import power_of_two

__version__ = "0.1.0"

__all__ = [
    "AttributeScorer",
    "AuxiliaryClassifier",
    "Callback",
    "Checkpoint",
    "CheckpointError",
    "Choice",
    "Command",
    "ConfigError",
    "Constraint",
    "DataError",
    "DataSpec",
    "Dataset",
    "Discriminator",
    "DiscriminatorChoice",
    "Editor",
    "FeatureExtractor",
    "GanforgeError",
    "Generator",
    "GeneratorChoice",
    "LatentSpace",
    "Logger",
    "Loss",
    "LossChoice",
    "Metric",
    "OutputError",
    "Penalty",
    "PenaltyContext",
    "PluginError",
    "PluginManager",
    "Progressive",
    "Register",
    "Regularizer",
    "RegularizerChoice",
    "RunConfig",
    "Sampler",
    "StyleGenerator",
    "TrainedGenerator",
    "Trainer",
    "TrainingRun",
    "Translator",
    "UnknownComponentError",
    "atomic_write",
    "atomic_write_text",
    "dump_toml",
    "get_plugin_manager",
    "hookimpl",
    "linear_decay",
    "load_checkpoint",
    "load_config",
    "load_generator",
    "load_settings",
    "make_converter",
    "power_of_two",
    "read_toml",
    "resolve_device",
    "save_array",
    "save_checkpoint",
    "save_samples",
    "set_plugin_manager",
    "structure_as",
    "to_unit",
]
