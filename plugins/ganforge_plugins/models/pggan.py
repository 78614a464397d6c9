"""Progressive growing of GANs: Karras, Aila, Laine & Lehtinen 2018, "Progressive Growing of GANs
for Improved Quality, Stability, and Variation" (arXiv:1710.10196).

The pieces (section 3-4 and appendix A):

- pixelwise feature normalisation in the generator, ``b = a / sqrt(mean_j(a_j^2) + eps)`` after
  every convolution (eq. in section 4.2), and on the latent;
- minibatch standard deviation: the standard deviation of every feature at every position over a
  group of samples (4, or a divisor of the batch), averaged to one value per group and appended as
  a feature map before the discriminator's last block (section 3);
- equalised learning rate: weights drawn from N(0, 1) and multiplied at run time by the He
  constant ``sqrt(2 / fan_in)`` (``gain / sqrt(fan_in)``), so that Adam's step is the same
  relative size for every layer (section 4.1);
- progressive growing: training starts at ``start_resolution`` (4x4); each higher-resolution
  block is faded in over ``fade_images`` images, its output mixed with the upsampled output of the
  previous resolution, ``lerp(upsample(toRGB_old(h)), toRGB_new(block(h)), alpha)``, then trained
  for ``stabilize_images`` (section 2, figure 2). The discriminator mirrors it with
  ``lerp(fromRGB_old(downsample(x)), block(fromRGB_new(x)), alpha)``.

The widths are ``min(channel_max, channel_base // resolution)``. Table 2's networks (1024x1024,
512-d latent, widths 512 halving from 64x64 up: 23.1M parameters each) are
``channel_base = 16384, channel_max = 512`` (``PGGANGeneratorConfig.paper()``); the defaults are
narrower (2048, 128) so that small images train quickly on a CPU.

Every block is built up front, so the optimiser holds every parameter from the first step and a
resumed run restores its state exactly; the phase and ``alpha`` live in buffers saved with the
weights. The generator always returns full-resolution images (the current resolution upsampled by
nearest neighbour) and the discriminator average-pools its full-resolution input to the current
resolution, so that the engine sees fixed shapes. With ``progressive = false`` (the default, as
the contract needs every parameter in use) both are the full networks of Table 2.

The blocks are layers named in the config: the generator's ``norm`` (``pixel-norm``), both networks'
``activation`` (``leaky-relu``, slope 0.2; fused into the equalised convolutions through
``ops.bias_act``, so any activation with a ``bias_act`` spec) and the discriminator's ``head`` before
its last block (``minibatch-stddev`` with ``group_size = 4``; ``head = "none"`` removes it).

Departures: the generator's output goes through ``tanh`` (the engine's images are in ``[-1, 1]``;
the paper's is linear), and the minibatch standard deviation is ``sqrt(var + eps) - sqrt(eps)``
(exactly zero for identical samples; NVlabs' ``sqrt(var + eps)`` differs by the constant 1e-4).
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import ConfigError, DataSpec, LatentSpace, LayerChoice, hookimpl, power_of_two
from torch import Tensor, nn

from ganforge_plugins import ops
from ganforge_plugins.layers.activation import fused_activation, leaky_relu_choice
from ganforge_plugins.layers.equalized import EqualizedConv2d, EqualizedLinear
from ganforge_plugins.layers.minibatch_stddev import minibatch_stddev_choice
from ganforge_plugins.layers.pixel_norm import pixel_norm_choice

# -- configs --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class GrowthConfig:
    """Progressive growing schedule (PGGAN section 2; appendix A.1: 800k images per fade and per
    stabilisation)."""

    progressive: bool = False
    start_resolution: int = attrs.field(default=4, validator=power_of_two(4, 1024))
    fade_images: int = attrs.field(default=800_000, validator=v.ge(0))
    stabilize_images: int = attrs.field(default=800_000, validator=v.ge(0))


@attrs.frozen(kw_only=True)
class PGGANGeneratorConfig(GrowthConfig):
    latent_dim: int = attrs.field(default=512, validator=v.ge(1))  # Table 2: 512-d latent
    channel_base: int = attrs.field(default=2048, validator=v.ge(1))  # width min(max, base // res); Table 2: 16384
    channel_max: int = attrs.field(default=128, validator=v.ge(1))  # Table 2: 512
    normalize_latents: bool = True  # pixel norm on z (appendix A.1)
    norm: LayerChoice = attrs.field(factory=pixel_norm_choice)  # after every conv (section 4.2)
    activation: LayerChoice = attrs.field(factory=leaky_relu_choice)  # leaky ReLU 0.2 (section 4.1)

    @classmethod
    def paper(cls, **changes: object) -> PGGANGeneratorConfig:
        """Table 2's generator: 512-d latent, widths 512 halving from 64x64 (23.1M at 1024x1024)."""
        return cls(**{"channel_base": 16384, "channel_max": 512, "latent_dim": 512, **changes})  # type: ignore[arg-type]


@attrs.frozen(kw_only=True)
class PGGANDiscriminatorConfig(GrowthConfig):
    channel_base: int = attrs.field(default=2048, validator=v.ge(1))  # Table 2: 16384
    channel_max: int = attrs.field(default=128, validator=v.ge(1))  # Table 2: 512
    head: LayerChoice = attrs.field(factory=minibatch_stddev_choice)  # before the 4x4 block (section 3)
    activation: LayerChoice = attrs.field(factory=leaky_relu_choice)

    @classmethod
    def paper(cls, **changes: object) -> PGGANDiscriminatorConfig:
        """Table 2's discriminator: widths 16 at 1024x1024 doubling to 512 (23.1M parameters)."""
        return cls(**{"channel_base": 16384, "channel_max": 512, **changes})  # type: ignore[arg-type]


# -- the maths --------------------------------------------------------------------------------------


def channels_at(resolution: int, base: int, cap: int) -> int:
    """Feature maps at ``resolution``: ``min(cap, base // resolution)`` (PGGAN's ``nf``), at least 1."""
    return max(1, min(cap, base // resolution))


def check_resolution(data: DataSpec, who: str, name: str, minimum: int = 4) -> int:
    """The image side, or a ConfigError for a non-square or non-power-of-two image."""
    if not data.is_image or data.shape[1] != data.shape[2]:
        raise ConfigError(f"{who}: {name} needs square images, but the dataset yields samples of shape {data.shape}")
    r = data.resolution
    if r < minimum or r & (r - 1):
        raise ConfigError(f"{who}: {name} needs a power-of-two resolution >= {minimum}, got {r} "
                          f"(samples of shape {data.shape}); set data.resolution to 32, 64, ...")
    return r


def growth_phase(images_seen: int, *, phases: int, fade_images: int, stabilize_images: int) -> tuple[int, float]:
    """``(phase, alpha)`` after ``images_seen`` images: phase 0 is the start resolution, trained for
    ``stabilize_images``; every later phase fades its block in over ``fade_images`` (alpha linear
    from 0 to 1) and then stabilises for ``stabilize_images``. The last phase lasts forever."""
    if images_seen < stabilize_images or phases <= 1:
        return 0, 1.0
    period = fade_images + stabilize_images
    t = images_seen - stabilize_images
    phase = 1 + t // period if period > 0 else phases - 1
    if phase >= phases:
        return phases - 1, 1.0
    into = t - (phase - 1) * period
    alpha = 1.0 if fade_images == 0 else min(1.0, into / fade_images)
    return int(phase), float(alpha)


# -- progressive growing ----------------------------------------------------------------------------


class Growing(nn.Module):
    """What a progressively grown network shares: the phase and fade-in ``alpha`` buffers and
    :meth:`set_training_progress` (the :class:`ganforge.Progressive` protocol).

    ``level`` counts resolutions from 4x4 (level 0) to the full one (``levels - 1``); a network that
    does not grow stays at the last level with ``alpha = 1``.
    """

    def _init_growth(self, growth: GrowthConfig, resolution: int, who: str) -> None:
        self.levels = int(math.log2(resolution)) - 1  # 4x4 .. resolution
        self.progressive = growth.progressive
        self.growth = growth
        if growth.start_resolution > resolution:
            raise ConfigError(f"{who}.start_resolution: {growth.start_resolution} is above the data resolution "
                              f"{resolution}")
        self.start_level = int(math.log2(growth.start_resolution)) - 2 if growth.progressive else self.levels - 1
        # also without growing (then fixed at the full network), so that checkpoints have one layout
        self.register_buffer("phase", torch.tensor(self.start_level, dtype=torch.int64))
        self.register_buffer("alpha", torch.tensor(1.0))

    def current_phase(self) -> tuple[int, float]:
        """``(level, alpha)`` now; reads the buffers (one host sync on a GPU)."""
        if not self.progressive:
            return self.levels - 1, 1.0
        return int(self.phase), float(self.alpha)

    def set_phase(self, resolution: int, alpha: float = 1.0) -> None:
        """Put the network at ``resolution`` with fade-in ``alpha`` (for tests and tools)."""
        if not self.progressive:
            raise ConfigError("set_phase: this network was built with progressive = false")
        level = int(math.log2(resolution)) - 2
        if resolution & (resolution - 1) or not self.start_level <= level < self.levels:
            raise ConfigError(f"set_phase: resolution {resolution} is not a level of this network "
                              f"({4 << self.start_level} .. {4 << (self.levels - 1)})")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"set_phase: alpha must be in [0, 1], got {alpha}")
        self.phase.fill_(level)
        self.alpha.fill_(float(alpha))

    def set_training_progress(self, images_seen: int) -> None:
        """Follow the schedule: set the phase and ``alpha`` reached after ``images_seen`` images."""
        if not self.progressive:
            return
        g = self.growth
        phase, alpha = growth_phase(images_seen, phases=self.levels - self.start_level, fade_images=g.fade_images,
                                    stabilize_images=g.stabilize_images)
        self.phase.fill_(self.start_level + phase)
        self.alpha.fill_(alpha)

    def needs_fade(self, level: int, alpha: float) -> bool:
        return self.progressive and alpha < 1.0 and level > self.start_level


# -- the networks ---------------------------------------------------------------------------------


class GeneratorBlock(nn.Module):
    """Upsample (nearest) -> conv 3x3 -> lrelu -> PN -> conv 3x3 -> lrelu -> PN (Table 2)."""

    def __init__(self, c_in: int, c_out: int, *, act: tuple[str, float], norm: LayerChoice) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv0 = EqualizedConv2d(c_in, c_out, 3, act=act[0], alpha=act[1])
        self.norm0 = norm.build(channels=c_out)
        self.conv1 = EqualizedConv2d(c_out, c_out, 3, act=act[0], alpha=act[1])
        self.norm1 = norm.build(channels=c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm1(self.conv1(self.norm0(self.conv0(self.upsample(x)))))


class GeneratorInput(nn.Module):
    """Latent -> 'conv 4x4' (a dense layer to 4x4xC, He gain sqrt(2)/4 as the original code) ->
    lrelu -> PN -> conv 3x3 -> lrelu -> PN."""

    def __init__(self, latent_dim: int, c: int, *, act: tuple[str, float], norm: LayerChoice) -> None:
        super().__init__()
        self.channels, self.act = c, act
        self.dense = EqualizedLinear(latent_dim, c * 16, bias=False, gain=math.sqrt(2) / 4)
        self.bias = nn.Parameter(torch.zeros(c))
        self.norm0 = norm.build(channels=c)
        self.conv = EqualizedConv2d(c, c, 3, act=act[0], alpha=act[1])
        self.norm1 = norm.build(channels=c)

    def forward(self, z: Tensor) -> Tensor:
        x = self.dense(z).reshape(-1, self.channels, 4, 4)  # [N, C, 4, 4]
        x = self.norm0(ops.bias_act(x, self.bias, act=self.act[0], alpha=self.act[1], gain=1.0))
        return self.norm1(self.conv(x))


class PGGANGenerator(Growing):
    """PGGAN generator (Table 2, left), grown progressively when ``progressive``."""

    def __init__(self, config: PGGANGeneratorConfig, data: DataSpec) -> None:
        super().__init__()
        resolution = check_resolution(data, "generator", "pggan")
        self._init_growth(config, resolution, "generator")
        self.config = config
        self.resolution = resolution
        self.latent_spaces = (LatentSpace(name="z", shape=(config.latent_dim,)),)
        self.num_classes = None
        ch = [channels_at(4 << i, config.channel_base, config.channel_max) for i in range(self.levels)]
        act, norm = fused_activation(config.activation, "generator.activation"), config.norm
        self.blocks = nn.ModuleList([GeneratorInput(config.latent_dim, ch[0], act=act, norm=norm)])
        self.blocks.extend(GeneratorBlock(ch[i - 1], ch[i], act=act, norm=norm) for i in range(1, self.levels))
        # one toRGB per resolution the schedule visits (only the last one without growing)
        self.to_rgb = nn.ModuleDict({
            str(4 << i): EqualizedConv2d(ch[i], data.channels, 1, gain=1.0)
            for i in range(self.start_level, self.levels)
        })

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        level, alpha = self.current_phase()
        x = ops.pixel_norm(z) if self.config.normalize_latents else z
        h = x
        previous = x
        for block in self.blocks[: level + 1]:
            previous, h = h, block(h)
        img = self.to_rgb[str(4 << level)](h)  # [N, C, r, r]
        if self.needs_fade(level, alpha):
            old = F.interpolate(self.to_rgb[str(2 << level)](previous), scale_factor=2, mode="nearest")
            img = torch.lerp(old, img, self.alpha.to(img.dtype))
        img = torch.tanh(img)
        if img.shape[-1] != self.resolution:
            img = F.interpolate(img, size=(self.resolution,) * 2, mode="nearest")
        return img


class DiscriminatorBlock(nn.Module):
    """PGGAN: conv 3x3 (C_in -> C_in) -> lrelu -> conv 3x3 (-> C_out) -> lrelu -> downsample
    (2x2 average). With a FIR ``resample_filter`` (StyleGAN) the downsampling is a low-pass filter
    and 2x decimation between the two convolutions."""

    def __init__(self, c_in: int, c_out: int, *, act: tuple[str, float], resample_filter: Tensor | None) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(c_in, c_in, 3, act=act[0], alpha=act[1])
        self.fir = resample_filter is not None
        if self.fir:
            self.register_buffer("resample_filter", resample_filter)
        self.conv1 = EqualizedConv2d(c_in, c_out, 3, act=act[0], alpha=act[1])
        self.downsample = nn.Identity() if self.fir else nn.AvgPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv0(x)
        if self.fir:
            x = ops.downsample2d(x, self.resample_filter)
        return self.downsample(self.conv1(x))


class DiscriminatorEpilogue(nn.Module):
    """4x4: head (minibatch stddev) -> conv 3x3 -> lrelu -> conv 4x4 (valid) -> lrelu -> fully connected."""

    def __init__(self, c: int, *, act: tuple[str, float], head: LayerChoice) -> None:
        super().__init__()
        self.head = head.build(channels=c, resolution=4)
        extra = int(getattr(self.head, "extra_channels", 0))  # the feature maps the head appends
        self.conv = EqualizedConv2d(c + extra, c, 3, act=act[0], alpha=act[1])
        self.conv4x4 = EqualizedConv2d(c, c, 4, act=act[0], alpha=act[1], padding=0)
        self.fc = EqualizedLinear(c, 1, gain=1.0)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv4x4(self.conv(self.head(x)))  # [N, C, 1, 1]
        return self.fc(x.flatten(1)).flatten()  # [N]


class PGGANDiscriminator(Growing):
    """PGGAN discriminator (Table 2, right), grown progressively when ``progressive``."""

    name = "pggan"

    def __init__(self, config: PGGANDiscriminatorConfig, data: DataSpec) -> None:
        super().__init__()
        resolution = check_resolution(data, "discriminator", self.name)
        self._init_growth(config, resolution, "discriminator")
        self.config = config
        self.resolution = resolution
        self.num_classes = None
        taps = getattr(config, "resample_filter", ())
        f = ops.setup_filter(list(taps)) if taps else None
        ch = [channels_at(4 << i, config.channel_base, config.channel_max) for i in range(self.levels)]
        act = fused_activation(config.activation, "discriminator.activation")
        self.from_rgb = nn.ModuleDict({
            str(4 << i): EqualizedConv2d(data.channels, ch[i], 1, act=act[0], alpha=act[1])
            for i in range(self.start_level, self.levels)
        })
        # blocks[i] takes resolution 4 << i down to 2 << i; blocks[0] is the 4x4 epilogue
        self.blocks = nn.ModuleList([DiscriminatorEpilogue(ch[0], act=act, head=config.head)])
        self.blocks.extend(DiscriminatorBlock(ch[i], ch[i - 1], act=act,
                                              resample_filter=None if f is None else f.clone())
                           for i in range(1, self.levels))

    def forward(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        level, alpha = self.current_phase()
        r = 4 << level
        if x.shape[-1] != r:
            x = F.avg_pool2d(x, self.resolution // r)  # the full-resolution input at the current resolution
        h = self.blocks[level](self.from_rgb[str(r)](x))
        if self.needs_fade(level, alpha):
            old = self.from_rgb[str(r // 2)](F.avg_pool2d(x, 2))
            h = torch.lerp(old, h, self.alpha.to(h.dtype))
        for block in self.blocks[level - 1 :: -1] if level > 0 else ():
            h = block(h)
        return h  # the epilogue (blocks[0]) returns [N]


@hookimpl
def ganforge_register_generators(register):
    register("pggan", PGGANGenerator, PGGANGeneratorConfig)


@hookimpl
def ganforge_register_discriminators(register):
    register("pggan", PGGANDiscriminator, PGGANDiscriminatorConfig)
