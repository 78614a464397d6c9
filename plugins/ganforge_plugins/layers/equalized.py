"""The equalised learning rate (Karras et al. 2018, PGGAN, arXiv:1710.10196, section 4.1): weights are
drawn from ``N(0, 1)`` and scaled at run time by He's constant ``c = gain / sqrt(fan_in)``,

    y = (c W) x + b,

so that Adam's per-parameter step sizes act alike on every layer whatever its fan-in. StyleGAN's
mapping network also scales the learning rate by ``lr_mul`` (weights ``N(0, 1) / lr_mul``, scaled by
``c lr_mul``). Bias and activation go through :func:`ganforge_plugins.ops.bias_act`. Registered as the
layer kind ``equalized-lr``: ``factory(config, channels=C_in, out_channels=C_out, kernel_size=k)``.
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import hookimpl
from torch import Tensor, nn

from ganforge_plugins import ops


class EqualizedLinear(nn.Module):
    """Fully connected layer with equalised learning rate (PGGAN section 4.1).

    ``weight ~ N(0, 1) / lr_mul`` is scaled at run time by ``gain / sqrt(in_features) * lr_mul``;
    the bias by ``lr_mul`` (StyleGAN's mapping network uses ``lr_mul = 0.01``). The activation
    (with ``act_gain``) goes through :func:`ganforge_plugins.ops.bias_act`.
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, gain: float = math.sqrt(2),
                 lr_mul: float = 1.0, bias_init: float = 0.0, act: str = "linear", alpha: float | None = None,
                 act_gain: float = 1.0) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = gain / math.sqrt(in_features) * lr_mul
        self.bias_gain = lr_mul
        self.act, self.alpha, self.act_gain = act, alpha, act_gain

    def forward(self, x: Tensor) -> Tensor:
        x = x.matmul((self.weight * self.weight_gain).t())  # [N, out]
        b = self.bias
        if b is not None and self.bias_gain != 1:
            b = b * self.bias_gain
        return ops.bias_act(x, b, act=self.act, alpha=self.alpha, gain=self.act_gain)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.act}, lr_mul={self.bias_gain}"


class EqualizedConv2d(nn.Module):
    """Convolution with equalised learning rate: ``N(0, 1)`` weights scaled by ``gain / sqrt(fan_in)``,
    then bias + activation through :func:`ganforge_plugins.ops.bias_act`. ``padding=None`` keeps the
    size (``kernel // 2``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True,
                 gain: float = math.sqrt(2), act: str = "linear", alpha: float | None = None, act_gain: float = 1.0,
                 padding: int | None = None) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2 if padding is None else padding
        self.act, self.alpha, self.act_gain = act, alpha, act_gain

    def forward(self, x: Tensor) -> Tensor:
        x = F.conv2d(x, self.weight * self.weight_gain, padding=self.padding)
        return ops.bias_act(x, self.bias, act=self.act, alpha=self.alpha, gain=self.act_gain)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}, act={self.act}")


@attrs.frozen(kw_only=True)
class EqualizedConfig:
    gain: float = attrs.field(default=math.sqrt(2), validator=v.gt(0.0))  # He's for (leaky) ReLU
    activation: str = attrs.field(default="lrelu", validator=v.in_(tuple(ops.ACTIVATIONS)))
    bias: bool = True


def equalized_conv(config: EqualizedConfig, *, channels: int, out_channels: int | None = None,
                   kernel_size: int = 3, **context: object) -> nn.Module:
    """A convolution with PGGAN's equalised learning rate: (gain / sqrt(fan_in)) W * x + b, then the activation."""
    return EqualizedConv2d(channels, out_channels or channels, kernel_size, bias=config.bias, gain=config.gain,
                           act=config.activation)


@hookimpl
def ganforge_register_layers(register):
    register("equalized-lr", equalized_conv, EqualizedConfig)
