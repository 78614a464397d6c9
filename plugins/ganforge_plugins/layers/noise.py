"""Noise injection (Karras et al. 2019, StyleGAN, arXiv:1812.04948, section 3.2 and figure 1b "B"):

    y = x + b_i * n,    n ~ N(0, 1) of shape [N, 1, H, W]

one noise image per sample, broadcast over the channels with a learned per-channel strength ``b``
(initialised to zero, so a network starts as if without it). ``mode = "const"`` uses a fixed noise
image drawn once (kept in the checkpoint), for repeatable samples; ``"none"`` adds nothing.
"""

from __future__ import annotations

import attrs
import torch
from attrs import validators as v
from ganforge import ConfigError, hookimpl
from torch import Tensor, nn


class NoiseInjection(nn.Module):
    """``x + strength_c * n`` with one ``N(0, 1)`` noise image per sample (StyleGAN's B)."""

    def __init__(self, channels: int, resolution: int, mode: str = "random") -> None:
        super().__init__()
        self.mode = mode
        self.strength = nn.Parameter(torch.zeros(channels))
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "none":
            return x
        if self.mode == "const":
            noise = self.noise_const.to(x.dtype)
        else:
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        return x + self.strength.to(x.dtype)[None, :, None, None] * noise

    def extra_repr(self) -> str:
        return f"channels={len(self.strength)}, mode={self.mode}"


@attrs.frozen(kw_only=True)
class NoiseInjectionConfig:
    mode: str = attrs.field(default="random", validator=v.in_(("random", "const", "none")))


def noise_injection(config: NoiseInjectionConfig, *, channels: int, resolution: int | None = None,
                    **context: object) -> nn.Module:
    """StyleGAN's noise inputs: x + b * n, a learned per-channel strength of one noise image per sample."""
    if resolution is None:
        raise ConfigError("noise-injection needs the feature map's resolution from its network")
    return NoiseInjection(channels, resolution, config.mode)


@hookimpl
def ganforge_register_layers(register):
    register("noise-injection", noise_injection, NoiseInjectionConfig)
