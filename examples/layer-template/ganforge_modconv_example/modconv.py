"""Modulated convolution with weight demodulation: Karras, Laine, Aittala, Hellsten, Lehtinen & Aila
2020, "Analyzing and Improving the Image Quality of StyleGAN" (arXiv:1912.04958), section 2.2.

StyleGAN's AdaIN normalises the feature maps by their actual statistics, which the paper traces to
its droplet artefacts. StyleGAN2 moves the style into the convolution's weights instead and
normalises by the *expected* statistics:

    w'_{ijk}  = s_i * w_{ijk}                                    (eq. 1, modulation)
    sigma_j   = sqrt(sum_{i,k} (w'_{ijk})^2)                      (eq. 2)
    w''_{ijk} = w'_{ijk} / sqrt(sum_{i,k} (w'_{ijk})^2 + eps)     (eq. 3, demodulation)

with ``i`` the input channel, ``j`` the output channel, ``k`` the kernel tap and ``s = A(w)`` one
scale per input channel, a learned affine map of the intermediate latent (initialised to 1). Each
sample gets its own weights, so the convolution runs grouped over the batch (section 2.2's
"grouped convolutions"). The weights are ``N(0, 1)`` scaled by ``1 / sqrt(fan_in)`` at run time
(equalised learning rate).

Registered in ganforge's ``layer`` family as ``example-modulated-conv``. It sets ``replaces_conv``:
a StyleGAN generator given ``style = "example-modulated-conv"`` uses it as every layer's
convolution, followed by noise, bias and the activation, with no AdaIN after (figure 2c).
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import ConfigError, hookimpl
from torch import Tensor, nn


@attrs.frozen(kw_only=True)
class ModulatedConvConfig:
    demodulate: bool = True  # eq. 3; false gives the modulation alone
    eps: float = attrs.field(default=1e-8, validator=v.gt(0.0))


class ModulatedConv2d(nn.Module):
    """``conv(x_n, w''(s_n))`` per sample ``n`` with ``s_n = A(w_n)`` (StyleGAN2 eqs. 1-3)."""

    replaces_conv = True  # ganforge's StyleGAN: this layer is the convolution, not a block after it

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int, *, demodulate: bool,
                 eps: float) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.eps = demodulate, eps
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.affine_weight = nn.Parameter(torch.randn(in_channels, w_dim))  # A, equalised
        self.affine_bias = nn.Parameter(torch.ones(in_channels))  # s starts at 1
        self.affine_gain = 1 / math.sqrt(w_dim)

    def styles(self, w: Tensor) -> Tensor:
        """``s = A(w)``: ``[N, in_channels]``."""
        return F.linear(w, self.affine_weight * self.affine_gain, self.affine_bias)

    def modulated_weights(self, w: Tensor) -> Tensor:
        """``w''`` of every sample: ``[N, out, in, k, k]`` (eqs. 1 and 3)."""
        weight = self.weight[None] * self.weight_gain * self.styles(w)[:, None, :, None, None]  # eq. 1
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + self.eps)  # eq. 3
        return weight

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        n, _, h, wd = x.shape
        weight = self.modulated_weights(w).reshape(n * self.out_channels, self.in_channels, self.kernel_size,
                                                   self.kernel_size)
        y = F.conv2d(x.reshape(1, n * self.in_channels, h, wd), weight, padding=self.kernel_size // 2, groups=n)
        return y.reshape(n, self.out_channels, h, wd)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"demodulate={self.demodulate}")


def modulated_conv(config: ModulatedConvConfig, *, channels: int, in_channels: int | None = None,
                   w_dim: int | None = None, kernel_size: int = 3, **context: object) -> nn.Module:
    """StyleGAN2's modulated convolution with weight demodulation (Karras et al. 2020, eqs. 1-3)."""
    if w_dim is None:
        raise ConfigError("example-modulated-conv is a style block: it needs a network that gives it a style "
                          "(w_dim), such as the stylegan generator's `style`")
    return ModulatedConv2d(in_channels or channels, channels, w_dim, kernel_size, demodulate=config.demodulate,
                           eps=config.eps)


@hookimpl
def ganforge_register_layers(register):
    register("example-modulated-conv", modulated_conv, ModulatedConvConfig)
