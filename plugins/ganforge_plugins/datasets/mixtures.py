"""Mixtures of 2-D Gaussians with well-separated modes: the mode-collapse benchmarks.

Srivastava et al. 2017, "VEEGAN: Reducing Mode Collapse in GANs using Implicit Variational
Learning" (arXiv:1705.07761), section 5.1, and Lin et al. 2018, "PacGAN: The power of two samples
in generative adversarial networks" (arXiv:1712.04086), section 5.1:

- ``ring8``: 8 Gaussians with means ``2 (cos(2 pi k / 8), sin(2 pi k / 8))``, ``k = 0..7``, and
  standard deviation ``sigma = 0.02``;
- ``grid25``: 25 Gaussians with means on the grid ``{-4, -2, 0, 2, 4}^2`` and ``sigma = 0.05``.

Each mode has weight ``1 / K``. A dataset is a fixed set of ``n`` samples drawn from a seeded RNG
(each sample picks a mode uniformly, then adds ``N(0, sigma^2 I)``). Samples are vectors in their
natural units (not rescaled to ``[-1, 1]``), so a generator for them needs a linear output. The
mode ``centres`` ``[K, 2]``, ``sigma`` and each sample's ``modes`` index are exposed for evaluation
(see :mod:`ganforge_plugins.lab.metrics`); the dataset is unlabelled for training.
"""

from __future__ import annotations

import math

import attrs
import torch
from attrs import validators as v
from ganforge import DataSpec, hookimpl


@attrs.frozen(kw_only=True)
class Ring8Config:
    n: int = attrs.field(default=100_000, validator=v.ge(1))  # training samples
    seed: int = attrs.field(default=0, validator=v.ge(0))  # of the RNG drawing them
    radius: float = attrs.field(default=2.0, validator=v.gt(0.0))
    sigma: float = attrs.field(default=0.02, validator=v.gt(0.0))


@attrs.frozen(kw_only=True)
class Grid25Config:
    n: int = attrs.field(default=100_000, validator=v.ge(1))
    seed: int = attrs.field(default=0, validator=v.ge(0))
    extent: float = attrs.field(default=4.0, validator=v.gt(0.0))  # the grid spans [-extent, extent]^2
    sigma: float = attrs.field(default=0.05, validator=v.gt(0.0))


def ring_centres(k: int = 8, radius: float = 2.0) -> torch.Tensor:
    """``[k, 2]`` means ``radius (cos(2 pi i / k), sin(2 pi i / k))``."""
    angle = torch.arange(k, dtype=torch.float64) * (2.0 * math.pi / k)
    return (radius * torch.stack([angle.cos(), angle.sin()], dim=1)).float()


def grid_centres(side: int = 5, extent: float = 4.0) -> torch.Tensor:
    """``[side^2, 2]`` means on a ``side x side`` grid over ``[-extent, extent]^2``, row-major in y."""
    ticks = torch.linspace(-extent, extent, side, dtype=torch.float64)
    y, x = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=1).float()


def sample_mixture(centres: torch.Tensor, sigma: float, n: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples of the equal-weight mixture of ``N(centre, sigma^2 I)``: ``([n, 2], modes [n])``."""
    modes = torch.randint(0, len(centres), (n,), generator=generator)
    noise = torch.randn(n, centres.shape[1], generator=generator)
    return centres[modes] + sigma * noise, modes


@attrs.define
class GaussianMixture2D:
    """A fixed sample of an equal-weight mixture of isotropic 2-D Gaussians."""

    spec: DataSpec
    images: torch.Tensor  # [N, 2] samples
    labels: None
    centres: torch.Tensor  # [K, 2] mode means
    sigma: float  # standard deviation of every mode
    modes: torch.Tensor  # [N] the mode each sample was drawn from

    @classmethod
    def build(cls, centres: torch.Tensor, sigma: float, n: int, seed: int) -> GaussianMixture2D:
        points, modes = sample_mixture(centres, sigma, n, torch.Generator().manual_seed(seed))
        return cls(spec=DataSpec(shape=(2,)), images=points, labels=None, centres=centres, sigma=sigma, modes=modes)


def ring8(config: Ring8Config) -> GaussianMixture2D:
    """8 Gaussians on a circle of radius 2, sigma 0.02 (VEEGAN, Srivastava et al. 2017)."""
    return GaussianMixture2D.build(ring_centres(8, config.radius), config.sigma, config.n, config.seed)


def grid25(config: Grid25Config) -> GaussianMixture2D:
    """25 Gaussians on a 5x5 grid over [-4, 4]^2, sigma 0.05 (VEEGAN, Srivastava et al. 2017)."""
    return GaussianMixture2D.build(grid_centres(5, config.extent), config.sigma, config.n, config.seed)


@hookimpl
def ganforge_register_datasets(register):
    register("ring8", ring8, Ring8Config)
    register("grid25", grid25, Grid25Config)
