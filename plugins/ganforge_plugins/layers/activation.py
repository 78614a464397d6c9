"""Activations as layers a network's config names (``activation = "relu"``,
``activation = {name = "leaky-relu", slope = 0.1}``):

- ``relu``: ``y = max(0, x)`` (Nair & Hinton 2010), DCGAN's generator and the decoders of pix2pix
  and CycleGAN;
- ``leaky-relu``: ``y = x`` for ``x >= 0``, ``slope * x`` otherwise (Maas et al. 2013); slope 0.2 in
  DCGAN's discriminator (Radford et al. 2016, section 3), PatchGAN, PGGAN and StyleGAN;
- ``silu``: ``y = x * sigmoid(x)`` (Ramachandran et al. 2017, "swish");
- ``elu``: ``y = x`` for ``x > 0``, ``exp(x) - 1`` otherwise (Clevert et al. 2016).

Each is :func:`ganforge_plugins.ops.bias_act` with gain 1 (the plain function), and says so in its
``bias_act`` attribute ``(act, alpha)``: a network that fuses its activation into an equalised
convolution (PGGAN, StyleGAN) reads it from there and keeps the fused kernel, with the He gain of
that activation.
"""

from __future__ import annotations

import attrs
from attrs import validators as v
from ganforge import ConfigError, LayerChoice, hookimpl
from torch import Tensor, nn

from ganforge_plugins import ops


class Activation(nn.Module):
    """``ops.bias_act(x, act=act, alpha=alpha, gain=1)``: the activation ``act``, unscaled."""

    def __init__(self, act: str, alpha: float = 0.0) -> None:
        super().__init__()
        self.bias_act = (act, alpha)

    def forward(self, x: Tensor) -> Tensor:
        act, alpha = self.bias_act
        return ops.bias_act(x, None, act=act, alpha=alpha, gain=1.0)

    def extra_repr(self) -> str:
        act, alpha = self.bias_act
        return f"{act}, alpha={alpha}" if act == "lrelu" else act


@attrs.frozen(kw_only=True)
class PlainActivationConfig:
    pass


@attrs.frozen(kw_only=True)
class LeakyReLUConfig:
    slope: float = attrs.field(default=0.2, validator=[v.ge(0.0), v.lt(1.0)])


def relu(config: PlainActivationConfig, *, channels: int | None = None, **context: object) -> nn.Module:
    """ReLU: max(0, x)."""
    return Activation("relu")


def leaky_relu(config: LeakyReLUConfig, *, channels: int | None = None, **context: object) -> nn.Module:
    """Leaky ReLU: x for x >= 0, slope x otherwise (slope 0.2 in DCGAN's discriminator)."""
    return Activation("lrelu", config.slope)


def silu(config: PlainActivationConfig, *, channels: int | None = None, **context: object) -> nn.Module:
    """SiLU / swish: x sigmoid(x)."""
    return Activation("swish")


def elu(config: PlainActivationConfig, *, channels: int | None = None, **context: object) -> nn.Module:
    """ELU: x for x > 0, exp(x) - 1 otherwise."""
    return Activation("elu")


def relu_choice() -> LayerChoice:
    return LayerChoice(name="relu", params=PlainActivationConfig(), factory=relu)


def leaky_relu_choice(slope: float = 0.2) -> LayerChoice:
    return LayerChoice(name="leaky-relu", params=LeakyReLUConfig(slope=slope), factory=leaky_relu)


def fused_activation(choice: LayerChoice, field: str) -> tuple[str, float]:
    """``(act, alpha)`` of the activation ``choice`` names, for a network that fuses it into a
    convolution (``ops.bias_act``); a ConfigError naming ``field`` for a layer that is not one."""
    if choice.name == "none":
        return "linear", 0.0
    layer = choice.build(channels=1)
    spec = getattr(layer, "bias_act", None)
    if spec is None:
        raise ConfigError(f"{field}: {choice.name!r} is not an activation this network can fuse into its "
                          "convolutions; choose relu, leaky-relu, silu, elu or none (or a layer with a "
                          "bias_act = (act, alpha) attribute)")
    return str(spec[0]), float(spec[1])


@hookimpl
def ganforge_register_layers(register):
    register("relu", relu, PlainActivationConfig)
    register("leaky-relu", leaky_relu, LeakyReLUConfig)
    register("silu", silu, PlainActivationConfig)
    register("elu", elu, PlainActivationConfig)
