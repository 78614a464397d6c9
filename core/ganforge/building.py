"""Building a run's components from its config: device, dataset, procedure, networks, optimisers."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn

from .config import OptimizerConfig, RunConfig
from .errors import ConfigError, GanforgeError
from .manager import PluginManager
from .memory import check_fits, meta_size
from .procedure import Procedure
from .protocols import DataSpec, LatentSpace, Loss, Sampler
from .registry import Component


def resolve_device(name: str, what: str = "device") -> torch.device:
    """The device ``name`` (``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``) asks for; ``what`` names the
    setting or option it came from in the error (``train.device``, ``--device``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(name, str) or not re.fullmatch(r"cpu|cuda(:\d+)?|mps", name):
        raise ConfigError(f"{what}: expected auto, cpu, cuda, cuda:N or mps, got {name!r}")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{what}: {name!r} was asked for, but CUDA is not available here (use 'auto' or 'cpu')")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"{what}: {name!r} was asked for, but this machine has {torch.cuda.device_count()} "
                          "CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{what}: 'mps' was asked for, but MPS is not available here (use 'auto' or 'cpu')")
    return device


def call_factory(where: str, component: Component, *args: Any, **kwargs: Any) -> Any:
    """``component.factory(*args, **kwargs)``; an exception of the plugin's own (a check it makes, a bug)
    becomes a :class:`ConfigError` naming the config field ``where``, the component and its provider."""
    try:
        return component.factory(*args, **kwargs)
    except GanforgeError:
        raise
    except Exception as exc:
        raise ConfigError(f"{where}: {component.name!r} ({component.provider.describe()}) could not be built: "
                          f"{type(exc).__name__}: {exc}") from exc


def build_dataset(config: RunConfig, manager: PluginManager) -> Any:
    return call_factory("data.name", manager.get("dataset", config.data.name), config.data.params)


def build_procedure(config: RunConfig, manager: PluginManager, loss: Loss | None = None) -> Procedure:
    """The procedure ``[procedure]`` names, given the run's adversarial loss (``[loss]``) and the
    manager (to build the loss terms its own config names)."""
    if loss is None:
        loss = call_factory("loss.name", manager.get("loss", config.loss.name), config.loss.params)
    procedure: Procedure = call_factory("procedure.name", manager.get("procedure", config.procedure.name),
                                        config.procedure.params, loss=loss, manager=manager)
    return procedure


def build_sampler(config: RunConfig, manager: PluginManager) -> Sampler:
    sampler: Sampler = call_factory("sampler.name", manager.get("sampler", config.sampler.name),
                                    config.sampler.params)
    return sampler


class ConfigNetworkBuilder:
    """The :class:`ganforge.NetworkBuilder` over a run config: ``[generator]`` and ``[discriminator]``
    name the registered networks a procedure builds its roles from."""

    def __init__(self, config: RunConfig, manager: PluginManager, device: torch.device | None = None) -> None:
        self.config = config
        self.manager = manager
        self.device = device

    def params(self, section: Literal["generator", "discriminator"]) -> Any:
        return getattr(self.config, section).params

    def __call__(self, section: Literal["generator", "discriminator"], *, data: DataSpec,
                 params: Any = None, **context: Any) -> nn.Module:
        choice = getattr(self.config, section)
        component = self.manager.get(section, choice.name)
        factory = component.factory
        accepted = _keywords(factory)
        unknown = [key for key in context if accepted is not None and key not in accepted]
        if unknown:
            raise ConfigError(
                f"{section}.name: {choice.name!r} cannot take {', '.join(unknown)} (this procedure needs a "
                f"{section} that accepts {', '.join(repr(k) for k in context)})"
            )
        params = choice.params if params is None else params
        batch = max(1, self.config.train.batch_size)
        check_fits(section, choice.name, params, *meta_size(factory, params, data, context, section, batch),
                   self.device, batch=batch)
        net: nn.Module = call_factory(f"{section}.name", component, params, data=data, **context)
        return net


def _keywords(factory: Any) -> set[str] | None:
    """The keyword arguments a factory accepts, or ``None`` when it takes any (``**kwargs``)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def preview_seed(config: RunConfig) -> int:
    """The seed of a run's fixed preview latents: the same grids during training and from a checkpoint."""
    return config.train.seed + 2


def make_optimizer(params: Iterable[nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    params = list(params)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps, weight_decay=cfg.weight_decay, momentum=cfg.momentum
        )
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def prior_space(generator: nn.Module) -> LatentSpace:
    spaces = getattr(generator, "latent_spaces", None)
    if not spaces:
        raise GanforgeError(f"{type(generator).__name__} exposes no latent_spaces; a Generator must list at least one")
    space: LatentSpace = spaces[0]
    return space
