"""The uniform prior ``z ~ U[low, high]^D`` (Goodfellow et al. 2014, arXiv:1406.2661, section 5, used a
uniform noise prior; DCGAN, Radford et al. 2016, arXiv:1511.06434, drew ``z`` from ``U[-1, 1]``)."""

from __future__ import annotations

import attrs
import torch
from attrs import validators as v
from ganforge import LatentSpace, hookimpl


def _above_low(instance: UniformSamplerConfig, attribute: attrs.Attribute, value: float) -> None:  # type: ignore[type-arg]
    if not value > instance.low:
        raise ValueError(f"'{attribute.name}' must be greater than low = {instance.low} (got {value!r})")


@attrs.frozen(kw_only=True)
class UniformSamplerConfig:
    low: float = attrs.field(default=-1.0, validator=v.instance_of(float))  # DCGAN: U[-1, 1]
    high: float = attrs.field(default=1.0, validator=[v.instance_of(float), _above_low])


def uniform(n: int, shape: tuple[int, ...], low: float, high: float, *, device: torch.device,
            generator: torch.Generator) -> torch.Tensor:
    """``[n, *shape]`` draws from ``U[low, high)``."""
    u = torch.rand((n, *shape), device=device, generator=generator)
    return u * (high - low) + low


class UniformSampler:
    """Latents from a uniform box."""

    def __init__(self, config: UniformSamplerConfig) -> None:
        self.low, self.high = config.low, config.high

    def sample(self, n: int, space: LatentSpace, *, device: torch.device, generator: torch.Generator) -> torch.Tensor:
        return uniform(n, space.shape, self.low, self.high, device=device, generator=generator)


@hookimpl
def ganforge_register_samplers(register):
    register("uniform", UniformSampler, UniformSamplerConfig)
