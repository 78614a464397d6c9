"""Bounds before allocation: a network's weights, training state and activations for one batch,
counted on the meta device (shapes only: nothing is allocated and no random number is drawn) and
compared with the memory it must fit in, so that a run too large for the machine is refused with a
message naming its largest settings instead of ending in an allocator traceback."""

from __future__ import annotations

import os
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from .errors import ConfigError, GanforgeError
from .protocols import DataSpec

# what training holds per parameter: the weight, its gradient, Adam's two moments and a moving average
TRAINING_COPIES = 5


def meta_size(factory: Any, params: Any, data: DataSpec, context: dict[str, Any], section: str,
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
        f"of memory of {where}" + (f". Its largest sizes: {largest}" if largest else ""))


def _size(n: float) -> str:
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.3g} {units[i]}"
