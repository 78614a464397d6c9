"""ResNet generator for image-to-image translation: Johnson, Alahi & Fei-Fei 2016, "Perceptual Losses
for Real-Time Style Transfer and Super-Resolution" (arXiv:1603.08155), as CycleGAN uses it (Zhu,
Park, Isola & Efros 2017, arXiv:1703.10593, appendix 7.2) and, conditioned on a target domain,
StarGAN (Choi et al. 2018, arXiv:1711.09020, appendix 7.2).

``c7s1-64, d128, d256, R256 x n_blocks, u128, u64, c7s1-3``: a 7x7 convolution on a reflection-padded
input, two stride-2 3x3 convolutions down, ``n_blocks`` residual blocks ``x + conv(relu(conv(x)))``
with reflection padding, two fractionally-strided convolutions up, a 7x7 convolution and ``tanh``.
Instance norm (Ulyanov et al. 2016) after every convolution but the last. CycleGAN uses 6 blocks at
128x128 and 9 at 256x256 and above.

With ``conditional = true`` the generator is StarGAN's ``G(x, c)``: the one-hot target domain ``c``
is replicated over the image and concatenated to ``x`` as ``num_domains`` extra channels; the domains
are the data's classes. Departure: instance norm after the first convolution subtracts the (constant)
response to those planes, leaving the target visible only through the zero padding at the borders in
StarGAN's code (and not at all with reflection padding), so a learned per-domain shift is also added
to the normalised stem output (a conditional instance norm's bias).

The normalisation (``norm``: the reference's instance norm without affine parameters, 11,378,179
parameters at 9 blocks on RGB as in CycleGAN's code) and the activation (``relu``) are layers named
in the config. As in that code, a convolution before batch norm has no bias and keeps one before
any other layer (departure: also with ``norm = "none"``, where the reference drops it). As a member of the generator
family its one latent space ``x`` is the source image, so ``g(x, target)`` is both
:class:`ganforge.Generator` and :class:`ganforge.Translator`.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import ConfigError, DataSpec, LatentSpace, LayerChoice, hookimpl
from torch import Tensor, nn

from ganforge_plugins.layers.activation import relu_choice
from ganforge_plugins.layers.normalization import instance_norm_choice


@attrs.frozen(kw_only=True)
class ResNetGeneratorConfig:
    in_channels: int | None = attrs.field(default=None, validator=v.optional(v.ge(1)))  # None: as the output
    base_channels: int = attrs.field(default=64, validator=v.ge(1))  # c7s1-64
    n_blocks: int = attrs.field(default=9, validator=v.ge(1))  # 9 at 256x256, 6 at 128x128
    n_downsampling: int = attrs.field(default=2, validator=[v.ge(0), v.le(6)])
    norm: LayerChoice = attrs.field(factory=instance_norm_choice)  # after every conv but the last
    activation: LayerChoice = attrs.field(factory=relu_choice)
    conditional: bool = False  # StarGAN: concat the one-hot target domain (the data's classes) to x


def one_hot_planes(target: Tensor, num_domains: int, h: int, w: int) -> Tensor:
    """``[N]`` domain indices -> ``[N, num_domains, h, w]`` one-hot planes (StarGAN's ``c``)."""
    return F.one_hot(target, num_domains).to(torch.float32)[:, :, None, None].expand(-1, -1, h, w)


class ResidualBlock(nn.Module):
    """``x + [pad-conv3-norm-relu-pad-conv3-norm](x)`` with reflection padding (CycleGAN's ``R256``)."""

    def __init__(self, channels: int, norm: LayerChoice, act: LayerChoice) -> None:
        super().__init__()
        bias = norm.name != "batch-norm"
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm.build(channels=channels),
            act.build(channels=channels),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm.build(channels=channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNetGenerator(nn.Module):
    """CycleGAN's ``ResnetGenerator``: ``[N, in_channels, H, W] (, target [N]) -> [N, C, H, W]`` in ``[-1, 1]``."""

    def __init__(self, config: ResNetGeneratorConfig, data: DataSpec) -> None:
        super().__init__()
        if not data.is_image:
            raise ConfigError(f"generator: resnet-generator needs images, but the dataset yields samples of shape "
                              f"{data.shape}")
        c, h, w = data.shape
        if config.conditional and not data.num_classes:
            raise ConfigError("generator.conditional: the conditional resnet-generator (StarGAN) needs labelled data: "
                              "its target domains are the dataset's classes")
        least = 2 ** (config.n_downsampling + 1)  # the residual blocks' reflection pad needs a map of at least 2x2
        if min(h, w) < least or h % 2**config.n_downsampling or w % 2**config.n_downsampling:
            raise ConfigError(f"generator.n_downsampling: {config.n_downsampling} stride-2 layers need images of at "
                              f"least {least}x{least} with sides divisible by {2**config.n_downsampling}, got {h}x{w}")
        self.num_classes = data.num_classes if config.conditional else None
        self.in_channels = config.in_channels or c
        self.latent_spaces = (LatentSpace(name="x", shape=(self.in_channels, h, w)),)
        n = config.base_channels
        extra = self.num_classes or 0
        norm, act = config.norm, config.activation
        bias = norm.name != "batch-norm"  # batch norm's beta absorbs a bias
        self.stem = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(self.in_channels + extra, n, 7, bias=bias),
                                  norm.build(channels=n))
        # instance norm subtracts the constant response to the one-hot planes: the target also shifts the stem's output
        self.domain_shift = nn.Embedding(extra, n) if extra else None
        layers: list[nn.Module] = [act.build(channels=n)]
        for i in range(config.n_downsampling):  # d128, d256
            c_out = n * 2 ** (i + 1)
            layers += [nn.Conv2d(n * 2**i, c_out, 3, 2, 1, bias=bias), norm.build(channels=c_out),
                       act.build(channels=c_out)]
        width = n * 2**config.n_downsampling
        layers += [ResidualBlock(width, norm, act) for _ in range(config.n_blocks)]
        for i in range(config.n_downsampling, 0, -1):  # u128, u64
            c_out = n * 2 ** (i - 1)
            layers += [nn.ConvTranspose2d(n * 2**i, c_out, 3, 2, 1, output_padding=1, bias=bias),
                       norm.build(channels=c_out), act.build(channels=c_out)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(n, c, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        for m in self.modules():  # CycleGAN: N(0, 0.02) weights
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, target: Tensor | None = None) -> Tensor:
        if x.dim() != 4 or x.shape[1:] != self.latent_spaces[0].shape:
            expected = ", ".join(map(str, self.latent_spaces[0].shape))
            raise ValueError(f"resnet-generator: expected images [N, {expected}], got {tuple(x.shape)}")
        if self.num_classes:
            if target is None or target.shape != (x.shape[0],):
                got = "none" if target is None else f"shape {tuple(target.shape)}"
                raise ValueError(f"resnet-generator: a conditional generator needs target domains [N={x.shape[0]}], "
                                 f"got {got}")
            x = torch.cat([x, one_hot_planes(target, self.num_classes, *x.shape[2:]).to(x.dtype)], dim=1)
            h = self.stem(x) + self.domain_shift(target)[:, :, None, None]  # type: ignore[misc]  # [N, C, H, W]
            return self.net(h)
        return self.net(self.stem(x))


@hookimpl
def ganforge_register_generators(register):
    register("resnet-generator", ResNetGenerator, ResNetGeneratorConfig)
