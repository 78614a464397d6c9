"""Style-based generator: Karras, Laine & Aila 2019, "A Style-Based Generator Architecture for
Generative Adversarial Networks" (arXiv:1812.04948).

Figure 1b and section 2-3:

- a mapping network ``f: z -> w``, an 8-layer MLP (512 wide, leaky ReLU) on the normalised latent
  with a learning-rate multiplier of 0.01 (appendix C);
- a learned constant 4x4 input to the synthesis network;
- after every convolution, per-pixel noise scaled by a learned per-channel strength, a bias,
  leaky ReLU and adaptive instance normalisation, eq. 1:
  ``AdaIN(x_i, y) = y_s,i (x_i - mu(x_i)) / sigma(x_i) + y_b,i`` with the style ``y = (y_s, y_b)`` a
  learned affine transform of ``w`` (``y_s`` initialised to 1);
- style-mixing regularisation (section 3.1): with probability 0.9 a second latent takes over from
  a random crossover layer;
- "bilinear" up- and down-sampling with the ``[1, 2, 1]`` low-pass FIR filter (Table 1, row B);
- truncation in W (section 3.2 / appendix B): ``w' = w_avg + psi (w - w_avg)`` with ``w_avg`` a
  running mean of ``w`` tracked during training (``w_avg_beta = 0.995``).

The generator exposes ``mapping(z) -> w``, ``synthesis(ws)`` on W+ (``[N, num_ws, w_dim]``, one
``w`` per layer: two per resolution), ``w_avg`` and ``layer_ranges``: "coarse" = 4x4 to 8x8
(ws 0-3), "middle" = 16x16 to 32x32 (ws 4-7), "fine" = 64x64 up (section 3.1). Progressive growing
(optional, off by default) reuses PGGAN's mechanism. The discriminator (``stylegan``) is PGGAN's
with the same FIR filter in its down-sampling and the minibatch standard deviation.

The widths are ``min(channel_max, channel_base // resolution)``; the paper's 1024x1024 generator
(26.2M parameters) is ``channel_base = 16384, channel_max = 512`` (``StyleGANGeneratorConfig.paper()``);
the defaults are narrower (2048, 128) for small images on a CPU.

The blocks are layers named in the config: ``activation`` (``leaky-relu``, slope 0.2, fused into
the equalised layers), the discriminator's ``head`` (``minibatch-stddev``) and the generator's
``style``, the block through which ``w`` acts on every layer. A style layer is built with
``channels``, ``in_channels``, ``w_dim``, ``resolution`` and ``kernel_size = 3`` and called as
``layer(x, w)``. Two kinds:

- one that normalises after the activation, as AdaIN (``adain``, the default; figure 1b:
  conv -> noise -> bias -> lrelu -> style). Where it exposes ``styles(w) -> (y_s, y_b)`` and the
  activation is leaky ReLU, the noise, bias, activation and AdaIN run as one op,
  :func:`ganforge_plugins.ops.style_epilogue` (one fused kernel on a GPU);
- one with ``replaces_conv = True``, which *is* the layer's convolution, as StyleGAN2's modulated
  convolution (Karras et al. 2020, arXiv:1912.04958, figure 2c): modconv(x, w) -> noise -> bias ->
  activation (with its He gain), and no normalisation after. Every layer then has a convolution,
  also the first at 4x4 on the constant input.

Noise: ``noise_mode`` "random" (training default), "const" (fixed per-layer noise buffers, the
evaluation default, as NVlabs' generate.py) or "none". Departure: the output goes through ``tanh``
so that images are in ``[-1, 1]`` as the engine expects (the paper's is linear).
"""

from __future__ import annotations

import itertools
import math

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import ConfigError, DataSpec, LatentSpace, LayerChoice, hookimpl
from torch import Tensor, nn

from ganforge_plugins import ops
from ganforge_plugins.layers.activation import fused_activation, leaky_relu_choice
from ganforge_plugins.layers.adain import adain_choice
from ganforge_plugins.layers.equalized import EqualizedConv2d, EqualizedLinear
from ganforge_plugins.models.pggan import (
    Growing,
    GrowthConfig,
    PGGANDiscriminator,
    PGGANDiscriminatorConfig,
    channels_at,
    check_resolution,
)

PSI_RANGE = (-1.0, 2.0)
NOISE_MODES = ("random", "const", "none")


def _psi(instance: object, attribute: attrs.Attribute, value: float) -> None:  # type: ignore[type-arg]
    lo, hi = PSI_RANGE
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"'{attribute.name}' must be in [{lo}, {hi}] (1 = no truncation) (got {value!r})")


def _taps(instance: object, attribute: attrs.Attribute, value: tuple[float, ...]) -> None:  # type: ignore[type-arg]
    if len(value) == 0 or sum(value) == 0:
        raise ValueError(f"'{attribute.name}' must be non-empty FIR taps with a non-zero sum (got {list(value)!r})")


@attrs.frozen(kw_only=True)
class StyleGANGeneratorConfig(GrowthConfig):
    latent_dim: int = attrs.field(default=512, validator=v.ge(1))  # z
    w_dim: int = attrs.field(default=512, validator=v.ge(1))  # w
    mapping_layers: int = attrs.field(default=8, validator=v.ge(1))  # 8-layer MLP
    mapping_lr_mul: float = attrs.field(default=0.01, validator=v.gt(0.0))  # appendix C
    channel_base: int = attrs.field(default=2048, validator=v.ge(1))  # paper: 16384
    channel_max: int = attrs.field(default=128, validator=v.ge(1))  # paper: 512
    style_mixing_prob: float = attrs.field(default=0.9, validator=[v.ge(0.0), v.le(1.0)])  # section 3.1
    w_avg_beta: float = attrs.field(default=0.995, validator=[v.ge(0.0), v.lt(1.0)])
    truncation_psi: float = attrs.field(default=1.0, validator=_psi)  # applied when sampling (eval mode)
    truncation_cutoff: int = attrs.field(default=0, validator=v.ge(0))  # truncate ws[:cutoff]; 0 = all
    resample_filter: tuple[float, ...] = attrs.field(default=(1.0, 2.0, 1.0), converter=tuple, validator=_taps)
    activation: LayerChoice = attrs.field(factory=leaky_relu_choice)  # leaky ReLU 0.2, also in the mapping
    style: LayerChoice = attrs.field(factory=adain_choice)  # how w acts on every layer (eq. 1)

    @classmethod
    def paper(cls, **changes: object) -> StyleGANGeneratorConfig:
        """The paper's generator: 512-d z and w, widths 512 halving from 64x64 (26.2M at 1024x1024)."""
        return cls(**{"channel_base": 16384, "channel_max": 512, "latent_dim": 512, "w_dim": 512,  # type: ignore[arg-type]
                      **changes})


@attrs.frozen(kw_only=True)
class StyleGANDiscriminatorConfig(PGGANDiscriminatorConfig):
    resample_filter: tuple[float, ...] = attrs.field(default=(1.0, 2.0, 1.0), converter=tuple, validator=_taps)


# -- the maths ------------------------------------------------------------------------------------


def check_psi(psi: float, *, name: str = "psi") -> float:
    """``psi`` if it lies in :data:`PSI_RANGE`, else a ConfigError."""
    lo, hi = PSI_RANGE
    if not (isinstance(psi, int | float) and math.isfinite(psi) and lo <= psi <= hi):
        raise ConfigError(f"{name}: truncation psi must be a number in [{lo}, {hi}] (1 = no truncation, "
                          f"0 = the average image), got {psi!r}")
    return float(psi)


def truncate(w: Tensor, w_avg: Tensor, psi: float, cutoff: int | None = None) -> Tensor:
    """``w' = w_avg + psi (w - w_avg)`` (StyleGAN eq. in section 3.2). ``w`` is ``[N, w_dim]`` or W+
    ``[N, num_ws, w_dim]``; with ``cutoff`` only ``ws[:, :cutoff]`` are truncated."""
    check_psi(psi)
    if psi == 1:
        return w
    if cutoff is None or w.ndim == 2:
        return w_avg.lerp(w, psi)
    return torch.cat([w_avg.lerp(w[:, :cutoff], psi), w[:, cutoff:]], dim=1)


def layer_ranges(num_ws: int) -> dict[str, range]:
    """Which ``ws`` are coarse (4x4-8x8), middle (16x16-32x32) and fine (64x64 up), section 3.1."""
    a, b = min(4, num_ws), min(8, num_ws)
    return {"coarse": range(0, a), "middle": range(a, b), "fine": range(b, num_ws)}


def mix_styles(w1: Tensor, w2: Tensor, num_ws: int, prob: float) -> Tensor:
    """W+ from two latents: ``w1`` before a crossover layer drawn uniformly from ``1 .. num_ws - 1``,
    ``w2`` from it on, with probability ``prob`` (else ``w1`` everywhere). No host sync."""
    ws1 = w1[:, None].expand(-1, num_ws, -1)
    if num_ws < 2 or prob <= 0:
        return ws1
    cutoff = torch.randint(1, num_ws, (), device=w1.device)
    cutoff = torch.where(torch.rand((), device=w1.device) < prob, cutoff, torch.full_like(cutoff, num_ws))
    first = torch.arange(num_ws, device=w1.device)[None, :, None] < cutoff  # [1, num_ws, 1]
    return torch.where(first, ws1, w2[:, None].expand(-1, num_ws, -1))


# -- layers ---------------------------------------------------------------------------------------


class MappingNetwork(nn.Module):
    """``z -> w``: pixel-normalised z through ``layers`` equalised dense layers with leaky ReLU and
    learning-rate multiplier ``lr_mul`` (StyleGAN figure 1b, appendix C)."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, *, lr_mul: float, act: tuple[str, float]) -> None:
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.layers = nn.Sequential(*[
            EqualizedLinear(a, b, lr_mul=lr_mul, act=act[0], alpha=act[1]) for a, b in itertools.pairwise(dims)
        ])

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(ops.pixel_norm(z))  # [N, w_dim]


class StyleLayer(nn.Module):
    """(optional up-sampling ->) conv 3x3 -> noise -> bias -> activation -> style(x, w); with a style
    that replaces the convolution: (up-sampling ->) style(x, w) -> noise -> bias -> activation."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, resolution: int, *, conv: bool, up: bool,
                 act: tuple[str, float], style: LayerChoice, resample_filter: Tensor | None) -> None:
        super().__init__()
        self.channels, self.up, self.act = c_out, up, act
        self.weight: nn.Parameter | None = None
        if conv:
            self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3))
            self.weight_gain = math.sqrt(2) / math.sqrt(c_in * 9)  # He constant (equalised lr)
        if up:
            self.register_buffer("resample_filter", resample_filter)
        self.noise_strength = nn.Parameter(torch.zeros(c_out))  # B in figure 1b, initialised to zero
        self.bias = nn.Parameter(torch.zeros(c_out))
        # built after the layer's own parameters, so that their order (the optimiser state's) is unchanged
        self.style = style.build(channels=c_out, in_channels=c_in, w_dim=w_dim, resolution=resolution, kernel_size=3,
                                 called_with=("x", "w"), slot="generator.style")
        self.replaces_conv = bool(getattr(self.style, "replaces_conv", False))
        if self.replaces_conv:  # the style layer is the convolution (dropped only now: the same draws as before)
            del self.weight
            self.weight = None
        # noise, bias, lrelu and AdaIN as one op (one fused kernel where a backend has it)
        self.fused = hasattr(self.style, "styles") and act[0] == "lrelu" and not self.replaces_conv
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        # checkpoints written before the style became a layer name it "adain"
        self.register_load_state_dict_pre_hook(_rename_adain)

    def forward(self, x: Tensor, w: Tensor, noise_mode: str) -> Tensor:
        if self.up:
            x = ops.upsample2d(x, self.resample_filter)  # bilinear with [1, 2, 1]
        if self.replaces_conv:
            x = self.style(x, w)
        elif self.weight is not None:
            x = F.conv2d(x, self.weight * self.weight_gain, padding=1)
        noise = None
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        elif noise_mode == "const":
            noise = self.noise_const.to(x.dtype)
        act, alpha = self.act
        if self.fused:
            scale, shift = self.style.styles(w)  # [N, C] each
            return ops.style_epilogue(x, noise, self.noise_strength, self.bias, scale, shift, alpha=alpha, gain=1.0)
        if noise is not None:
            x = x + noise * self.noise_strength.to(x.dtype).reshape(1, -1, 1, 1)
        if self.replaces_conv:  # StyleGAN2: the activation with its He gain, nothing after
            return ops.bias_act(x, self.bias, act=act, alpha=alpha)
        return self.style(ops.bias_act(x, self.bias, act=act, alpha=alpha, gain=1.0), w)


def _rename_adain(module: nn.Module, state_dict: dict[str, Tensor], prefix: str, *args: object) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "adain.")]:
        state_dict[prefix + "style." + key[len(prefix + "adain."):]] = state_dict.pop(key)


class SynthesisBlock(nn.Module):
    """Two style layers at one resolution: the 4x4 block starts from the learned constant."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, resolution: int, *, act: tuple[str, float],
                 style: LayerChoice, f: Tensor) -> None:
        super().__init__()
        first = resolution == 4
        if first:
            self.const = nn.Parameter(torch.ones(c_out, 4, 4))  # learned constant input (NVlabs: ones)
        self.layer0 = StyleLayer(c_in, c_out, w_dim, resolution, conv=not first, up=not first, act=act, style=style,
                                 resample_filter=None if first else f.clone())
        self.layer1 = StyleLayer(c_out, c_out, w_dim, resolution, conv=True, up=False, act=act, style=style,
                                 resample_filter=None)

    def forward(self, x: Tensor | None, ws: Tensor, noise_mode: str) -> Tensor:
        """``ws``: ``[N, 2, w_dim]``, this block's two styles."""
        if x is None:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        return self.layer1(self.layer0(x, ws[:, 0], noise_mode), ws[:, 1], noise_mode)


# -- the generator --------------------------------------------------------------------------------


class StyleGANGenerator(Growing):
    """StyleGAN generator: mapping network + synthesis network (figure 1b)."""

    def __init__(self, config: StyleGANGeneratorConfig, data: DataSpec) -> None:
        super().__init__()
        resolution = check_resolution(data, "generator", "stylegan")
        self._init_growth(config, resolution, "generator")
        self.config = config
        self.resolution = resolution
        self.num_classes = None
        self.num_ws = 2 * self.levels  # two styles per resolution: 18 at 1024x1024
        self.w_dim = config.w_dim
        self.layer_ranges = layer_ranges(self.num_ws)
        self.latent_spaces = (
            LatentSpace(name="z", shape=(config.latent_dim,)),
            LatentSpace(name="w", shape=(config.w_dim,)),
            LatentSpace(name="w+", shape=(self.num_ws, config.w_dim)),
        )
        act = fused_activation(config.activation, "generator.activation")
        if config.style.name == "none":
            raise ConfigError("generator.style: 'none' is not a style block; name one that takes w, e.g. 'adain'")
        self.mapping_net = MappingNetwork(config.latent_dim, config.w_dim, config.mapping_layers,
                                          lr_mul=config.mapping_lr_mul, act=act)
        self.register_buffer("w_avg", torch.zeros(config.w_dim))
        f = ops.setup_filter(list(config.resample_filter))
        ch = [channels_at(4 << i, config.channel_base, config.channel_max) for i in range(self.levels)]
        self.blocks = nn.ModuleList(
            SynthesisBlock(ch[max(i - 1, 0)], ch[i], config.w_dim, 4 << i, act=act, style=config.style, f=f)
            for i in range(self.levels)
        )
        self.to_rgb = nn.ModuleDict({
            str(4 << i): EqualizedConv2d(ch[i], data.channels, 1, gain=1.0)
            for i in range(self.start_level, self.levels)
        })

    def mapping(self, z: Tensor, labels: Tensor | None = None, *, truncation_psi: float = 1.0) -> Tensor:
        """``z: [N, latent_dim] -> w: [N, w_dim]``, truncated towards ``w_avg`` by ``truncation_psi``."""
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"mapping: expected z of shape [N, {self.config.latent_dim}], got {tuple(z.shape)}")
        return truncate(self.mapping_net(z), self.w_avg, truncation_psi)

    def synthesis(self, ws: Tensor, *, noise_mode: str | None = None) -> Tensor:
        """``ws: [N, num_ws, w_dim]`` (W+) ``-> [N, C, H, W]`` in ``[-1, 1]``."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"synthesis: expected ws of shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        if noise_mode is None:
            noise_mode = "random" if self.training else "const"
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"synthesis: noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        level, alpha = self.current_phase()
        h: Tensor | None = None
        previous = None
        for i, block in enumerate(self.blocks[: level + 1]):
            previous, h = h, block(h, ws[:, 2 * i : 2 * i + 2], noise_mode)
        assert h is not None
        img = self.to_rgb[str(4 << level)](h)
        if self.needs_fade(level, alpha):
            old = F.interpolate(self.to_rgb[str(2 << level)](previous), scale_factor=2, mode="nearest")
            img = torch.lerp(old, img, self.alpha.to(img.dtype))
        img = torch.tanh(img)
        if img.shape[-1] != self.resolution:
            img = F.interpolate(img, size=(self.resolution,) * 2, mode="nearest")
        return img

    def truncate(self, w: Tensor, psi: float, cutoff: int | None = None) -> Tensor:
        """``w_avg + psi (w - w_avg)`` on ``w`` or W+ (only ``ws[:, :cutoff]`` with a cutoff)."""
        return truncate(w, self.w_avg, psi, cutoff)

    def forward(self, z: Tensor, labels: Tensor | None = None, *, psi: float | None = None,
                noise_mode: str | None = None, truncation_psi: float | None = None) -> Tensor:
        """``z: [N, latent_dim] -> [N, C, H, W]``. In training: style mixing and the ``w_avg``
        update; ``psi`` (alias ``truncation_psi``, NVlabs' name) defaults to 1 in training and to the
        config's ``truncation_psi`` in eval mode."""
        if psi is None:
            psi = truncation_psi
        w = self.mapping(z, labels)
        if self.training:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().mean(dim=0).lerp(self.w_avg, self.config.w_avg_beta))
            w2 = self.mapping(torch.randn_like(z), labels) if self.config.style_mixing_prob > 0 else w
            ws = mix_styles(w, w2, self.num_ws, self.config.style_mixing_prob)
        else:
            ws = w[:, None].expand(-1, self.num_ws, -1)
        if psi is None:
            psi = 1.0 if self.training else self.config.truncation_psi
        cutoff = self.config.truncation_cutoff or None
        ws = truncate(ws, self.w_avg, psi, cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)


class StyleGANDiscriminator(PGGANDiscriminator):
    """PGGAN's discriminator with StyleGAN's [1, 2, 1] FIR down-sampling and minibatch stddev."""

    name = "stylegan"

    def __init__(self, config: StyleGANDiscriminatorConfig, data: DataSpec) -> None:
        super().__init__(config, data)


@hookimpl
def ganforge_register_generators(register):
    register("stylegan", StyleGANGenerator, StyleGANGeneratorConfig)


@hookimpl
def ganforge_register_discriminators(register):
    register("stylegan", StyleGANDiscriminator, StyleGANDiscriminatorConfig)
