"""The Gaussian prior ``z ~ N(0, sigma^2 I)`` of Goodfellow et al. 2014 (arXiv:1406.2661)."""

from __future__ import annotations

import attrs
import torch
from attrs import validators as v
from ganforge import LatentSpace, hookimpl


@attrs.frozen(kw_only=True)
class GaussianSamplerConfig:
    std: float = attrs.field(default=1.0, validator=v.gt(0.0))


class GaussianSampler:
    """Latents from an isotropic normal distribution."""

    def __init__(self, config: GaussianSamplerConfig) -> None:
        self.std = config.std

    def sample(
        self, n: int, space: LatentSpace, *, device: torch.device, generator: torch.Generator
    ) -> torch.Tensor:
        z = torch.randn((n, *space.shape), device=device, generator=generator)
        return z * self.std if self.std != 1.0 else z


@hookimpl
def ganforge_register_samplers(register):
    register("gaussian", GaussianSampler, GaussianSamplerConfig)
