"""PatchGAN discriminator: Isola, Zhu, Zhou & Efros 2017, "Image-to-Image Translation with
Conditional Adversarial Networks" (arXiv:1611.07004), section 3.2.2 and appendix 6.1.2.

A fully convolutional discriminator that classifies every N x N patch of the image as real or
fake and returns the map of those predictions ``[N, 1, h, w]`` (losses average over it). The 70x70
discriminator is ``C64-C128-C256-C512`` followed by a 1-channel convolution: 4x4 convolutions,
stride 2 for the first ``n_layers`` and stride 1 for the last two, batch norm on all but the first,
leaky ReLU 0.2. Its receptive field is ``1 + sum_l (k_l - 1) prod_{m<l} s_m = 70`` for
``n_layers = 3`` (16 for 1, 34 for 2, 142 for 4).

For an image-conditional model (pix2pix) the discriminator scores ``concat(condition, x)``: set
``condition_channels`` to the condition's channel count. Departure: the stride-1 layers pad
(1, 2) instead of (1, 1), so that the map is ``H / 2^n_layers`` per side (32x32 for a 256x256 input
where pix2pix's is 30x30) and small images (16x16) still yield a map; the receptive field is the same.

The normalisation (``norm``, batch norm by default) and the activation (``leaky-relu``, slope 0.2)
are layers named in the config. As in pix2pix's code, a convolution before batch norm has no bias
(beta absorbs it) and keeps one before any other layer; ``norm = "instance-norm"`` is the
reference's instance norm without affine parameters (the CycleGAN discriminator: 2,764,737
parameters at ``n_layers = 3`` on 3 channels, as pix2pix's code counts). Departure: with
``norm = "none"`` the convolutions keep their biases, where the reference's drop them.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import ConfigError, DataSpec, LayerChoice, hookimpl
from torch import Tensor, nn

from ganforge_plugins.layers.activation import leaky_relu_choice
from ganforge_plugins.layers.normalization import batch_norm_choice


@attrs.frozen(kw_only=True)
class PatchGANConfig:
    n_layers: int = attrs.field(default=3, validator=[v.ge(1), v.le(8)])  # 3 = the 70x70 PatchGAN
    base_channels: int = attrs.field(default=64, validator=v.ge(1))  # C64 first
    max_channels: int = attrs.field(default=512, validator=v.ge(1))  # C512 cap (8 x 64)
    norm: LayerChoice = attrs.field(factory=batch_norm_choice)  # on every conv but the first and the last
    activation: LayerChoice = attrs.field(factory=leaky_relu_choice)  # leaky ReLU 0.2 (appendix 6.1.2)
    condition_channels: int = attrs.field(default=0, validator=v.ge(0))  # > 0: image-conditional


def receptive_field(layers: list[tuple[int, int]]) -> int:
    """Receptive field of a stack of convolutions given as ``(kernel, stride)``:
    ``1 + sum_l (k_l - 1) * prod_{m < l} s_m``."""
    field, jump = 1, 1
    for kernel, stride in layers:
        field += (kernel - 1) * jump
        jump *= stride
    return field


class SamePad(nn.Module):
    """Zero padding (1, 2) on both axes, so that a 4x4 stride-1 convolution keeps the size."""

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x, (1, 2, 1, 2))


class PatchGANDiscriminator(nn.Module):
    """PatchGAN (pix2pix's ``NLayerDiscriminator``): ``[N, C(+C'), H, W] -> [N, 1, H/2^n, W/2^n]``."""

    def __init__(self, config: PatchGANConfig, data: DataSpec) -> None:
        super().__init__()
        if not data.is_image:
            raise ConfigError(f"discriminator: patchgan needs images, but the dataset yields samples of shape "
                              f"{data.shape}")
        h, w = data.shape[1:]
        if min(h, w) < 2**config.n_layers:
            raise ConfigError(f"discriminator.n_layers: {config.n_layers} stride-2 layers need images of at least "
                              f"{2**config.n_layers}x{2**config.n_layers}, got {h}x{w}")
        self.num_classes = None
        self.condition_channels = config.condition_channels
        base, cap, norm, act = config.base_channels, config.max_channels, config.norm, config.activation
        use_bias = norm.name != "batch-norm"
        width = [min(cap, base * 2**i) for i in range(config.n_layers + 1)]
        layers: list[nn.Module] = [nn.Conv2d(data.channels + config.condition_channels, width[0], 4, 2, 1),
                                   act.build(channels=width[0])]
        for i in range(1, config.n_layers):
            layers += [nn.Conv2d(width[i - 1], width[i], 4, 2, 1, bias=use_bias), norm.build(channels=width[i]),
                       act.build(channels=width[i])]
        n = config.n_layers
        layers += [SamePad(), nn.Conv2d(width[n - 1], width[n], 4, 1, 0, bias=use_bias), norm.build(channels=width[n]),
                   act.build(channels=width[n]), SamePad(), nn.Conv2d(width[n], 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)
        for m in self.modules():  # pix2pix: N(0, 0.02) weights, N(1, 0.02) norm scales
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d | nn.InstanceNorm2d | nn.GroupNorm) and m.weight is not None:
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    @property
    def receptive_field(self) -> int:
        """Computed from the convolutions' kernels and strides (70 for ``n_layers = 3``)."""
        convs = [m for m in self.net if isinstance(m, nn.Conv2d)]
        return receptive_field([(m.kernel_size[0], m.stride[0]) for m in convs])

    def forward(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        if self.condition_channels:
            if condition is None or condition.shape[1] != self.condition_channels:
                got = "none" if condition is None else f"shape {tuple(condition.shape)}"
                raise ConfigError(f"discriminator: patchgan was built with condition_channels="
                                  f"{self.condition_channels} and needs a condition image of that many channels, "
                                  f"got {got}")
            x = torch.cat([condition, x], dim=1)  # pix2pix scores concat(A, B)
        elif condition is not None:
            raise ConfigError("discriminator: patchgan got a condition image but was built with condition_channels=0; "
                              "set discriminator.condition_channels")
        return self.net(x)  # [N, 1, h, w]


@hookimpl
def ganforge_register_discriminators(register):
    register("patchgan", PatchGANDiscriminator, PatchGANConfig)
