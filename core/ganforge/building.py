"""Building a run's components from its config: device, dataset, procedure, networks, optimisers."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .config import OptimizerConfig, RunConfig
from .errors import ConfigError, GanforgeError
from .manager import PluginManager
from .procedure import Procedure
from .protocols import DataSpec, LatentSpace, Loss, Sampler


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} was asked for, but CUDA is not available here (use 'auto' or 'cpu')")
    return device


def build_dataset(config: RunConfig, manager: PluginManager) -> Any:
    return manager.get("dataset", config.data.name).factory(config.data.params)


def build_procedure(config: RunConfig, manager: PluginManager, loss: Loss | None = None) -> Procedure:
    """The procedure ``[procedure]`` names, given the run's adversarial loss (``[loss]``) and the
    manager (to build the loss terms its own config names)."""
    if loss is None:
        loss = manager.get("loss", config.loss.name).factory(config.loss.params)
    procedure: Procedure = manager.get("procedure", config.procedure.name).factory(
        config.procedure.params, loss=loss, manager=manager)
    return procedure


def build_sampler(config: RunConfig, manager: PluginManager) -> Sampler:
    sampler: Sampler = manager.get("sampler", config.sampler.name).factory(config.sampler.params)
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
        factory = self.manager.get(section, choice.name).factory
        accepted = _keywords(factory)
        unknown = [key for key in context if accepted is not None and key not in accepted]
        if unknown:
            raise ConfigError(
                f"{section}.name: {choice.name!r} cannot take {', '.join(unknown)} (this procedure needs a "
                f"{section} that accepts {', '.join(repr(k) for k in context)})"
            )
        params = choice.params if params is None else params
        batch = max(1, self.config.train.batch_size)
        check_fits(section, choice.name, params, *_meta_size(factory, params, data, context, section, batch),
                   self.device, batch=batch)
        net: nn.Module = factory(params, data=data, **context)
        return net


# what training holds per parameter: the weight, its gradient, Adam's two moments and a moving average
TRAINING_COPIES = 5


def _meta_size(factory: Any, params: Any, data: DataSpec, context: dict[str, Any], section: str,
               batch: int) -> tuple[int | None, int | None]:
    """``(parameters and buffer elements, activation elements of one forward pass of a batch)`` of the
    network ``factory`` builds, counted on the meta device (shapes only: nothing is allocated and no
    random number is drawn). ``None`` where the network cannot be built, or called with the inputs
    its kind usually takes, there: it is then built for real."""
    try:
        with torch.device("meta"):
            probe: nn.Module = factory(params, data=data, **context)
    except GanforgeError:
        raise
    except Exception:
        return None, None
    elements = sum(t.numel() for t in [*probe.parameters(), *probe.buffers()])
    return elements, _activations(probe, data, section, batch)


def _activations(probe: nn.Module, data: DataSpec, section: str, batch: int) -> int | None:
    """The elements of every module output in one forward pass on the meta device (what backward keeps)."""
    spaces = getattr(probe, "latent_spaces", None)
    shape = tuple(spaces[0].shape) if section == "generator" and spaces else tuple(data.shape)
    args: list[Tensor] = [torch.empty((batch, *shape), device="meta")]
    if getattr(probe, "num_classes", None):
        args.append(torch.zeros(batch, dtype=torch.long, device="meta"))
    total = 0

    def count(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal total
        if isinstance(output, Tensor):
            total += output.numel()

    handles = [m.register_forward_hook(count) for m in probe.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            probe(*args)
    except Exception:
        return None
    finally:
        for handle in handles:
            handle.remove()
    return total


def memory_bytes(device: torch.device | None) -> int | None:
    """The memory a network must fit in: the device's (a GPU's total), and the host's for the CPU, where
    every network is built first."""
    import os

    try:
        host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        host = None
    if device is not None and device.type == "cuda":
        gpu = torch.cuda.get_device_properties(device).total_memory
        return min(gpu, host) if host else gpu
    return host


def check_fits(section: str, name: str, params: Any, elements: int | None, activations: int | None,
               device: torch.device | None, *, batch: int = 1) -> None:
    """Refuse, before anything is allocated, a network whose weights, training state and activations
    cannot fit in memory, naming its largest settings."""
    budget = memory_bytes(device)
    if elements is None or budget is None:
        return
    weights = elements * 4 * TRAINING_COPIES
    needed = weights + (activations or 0) * 4
    if needed <= budget:
        return
    import attrs

    sizes = sorted(((getattr(params, f.name), f.name) for f in attrs.fields(type(params))
                    if type(getattr(params, f.name)) is int), reverse=True)[:3] if attrs.has(type(params)) else []
    largest = ", ".join(f"{section}.{k} = {v}" for v, k in sizes)
    if (activations or 0) * 4 > weights:  # the batch, not the network, is what does not fit
        largest = f"train.batch_size = {batch} (the batch's activations), then {largest}"
    where = "the GPU" if device is not None and device.type == "cuda" else "this machine"
    acts = f" and its activations for one batch {_size((activations or 0) * 4)}" if activations else ""
    raise ConfigError(
        f"{section}: {name!r} with these settings has {elements:,} parameters; their float32 weights with gradients, "
        f"optimiser state and moving average need about {_size(weights)}{acts}, more than the {_size(budget)} "
        f"of memory of {where}" + (f". Its largest sizes: {largest}" if largest else "")
)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"  # unreachable


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
