"""Pixelwise feature vector normalisation (Karras et al. 2018, PGGAN, arXiv:1710.10196, section 4.2):

    b_{x,y} = a_{x,y} / sqrt(1/C sum_j (a^j_{x,y})^2 + eps)

over the ``C`` channels at every pixel, with ``eps = 1e-8``; PGGAN puts it after every convolution of
the generator, in place of batch norm. Computed by :func:`ganforge_plugins.ops.pixel_norm` (its CUDA
kernel where one is built and verified).
"""

from __future__ import annotations

import attrs
from attrs import validators as v
from ganforge import LayerChoice, hookimpl
from torch import Tensor, nn

from ganforge_plugins import ops


@attrs.frozen(kw_only=True)
class PixelNormConfig:
    eps: float = attrs.field(default=1e-8, validator=v.gt(0.0))


class PixelNorm(nn.Module):
    """``b = a / sqrt(mean_j(a_j^2) + eps)`` over the channels at every pixel (PGGAN section 4.2)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return ops.pixel_norm(x, eps=self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


def pixel_norm(config: PixelNormConfig, *, channels: int, **context: object) -> nn.Module:
    """PGGAN's pixelwise feature vector normalisation: a / sqrt(mean_j a_j^2 + eps)."""
    return PixelNorm(config.eps)


def pixel_norm_choice() -> LayerChoice:
    return LayerChoice(name="pixel-norm", params=PixelNormConfig(), factory=pixel_norm)


@hookimpl
def ganforge_register_layers(register):
    register("pixel-norm", pixel_norm, PixelNormConfig)
