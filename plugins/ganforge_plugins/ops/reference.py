"""Reference PyTorch implementations of the hot operations of progressive and style-based GANs.

These functions are the specification: readable, differentiable to any order through autograd, and
the ground truth that the fused CUDA kernels (kernels issue) are tested against. Model code never
calls them directly; it calls :mod:`ganforge_plugins.ops`, which dispatches to a backend.

- ``bias_act``: ``clamp(act(x + b) * gain)`` with the bias broadcast along ``dim`` (NVlabs
  StyleGAN2-ADA ``torch_utils/ops/bias_act.py`` semantics and activation table).
- ``adain``: ``AdaIN(x_i, y) = y_s,i (x_i - mu(x_i)) / sigma(x_i) + y_b,i`` (Huang & Belongie 2017,
  arXiv:1703.06868; StyleGAN, Karras et al. 2019, arXiv:1812.04948, eq. 1).
- ``style_epilogue``: noise + bias + leaky ReLU + AdaIN, StyleGAN's per-layer epilogue.
- ``pixel_norm``: ``b = a / sqrt(mean_j(a_j^2) + eps)`` over channels (PGGAN, Karras et al. 2018,
  arXiv:1710.10196, section 4.2).
- ``minibatch_stddev``: PGGAN section 3's minibatch standard deviation feature.
- ``upfirdn2d``: upsample by zero insertion, pad, 2-D FIR filter, downsample (NVlabs semantics),
  with ``setup_filter``, ``upsample2d``, ``downsample2d`` and ``filter2d`` around it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

# -- bias + activation ---------------------------------------------------------------------------


class Activation(NamedTuple):
    func: object  # (x, alpha) -> y
    def_alpha: float
    def_gain: float


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": Activation(lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def bias_act(
    x: Tensor, b: Tensor | None = None, *, dim: int = 1, act: str = "linear", alpha: float | None = None,
    gain: float | None = None, clamp: float | None = None,
) -> Tensor:
    """``clamp(act(x + b, alpha) * gain, -clamp, clamp)``.

    Args:
        x: input of any shape.
        b: bias ``[x.shape[dim]]`` added along ``dim``, or ``None``.
        act: one of :data:`ACTIVATIONS`.
        alpha: the activation's shape parameter (the leaky slope); ``None`` = its default (0.2 for lrelu).
        gain: output scale; ``None`` = the activation's default (``sqrt(2)`` for relu/lrelu/swish,
            so that unit-variance inputs stay unit-variance). Pass ``1`` for the plain activation.
        clamp: clamp the output to ``[-clamp, clamp]``; ``None`` = no clamp.
    """
    if act not in ACTIVATIONS:
        raise ValueError(f"bias_act: unknown activation {act!r}; choose one of {', '.join(ACTIVATIONS)}")
    spec = ACTIVATIONS[act]
    alpha = spec.def_alpha if alpha is None else float(alpha)
    gain = spec.def_gain if gain is None else float(gain)
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias_act: bias of shape {tuple(b.shape)} does not match dim {dim} of x "
                             f"{tuple(x.shape)}")
        x = x + b.reshape([-1 if i == dim % x.ndim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)  # type: ignore[operator]
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


# -- normalisation -------------------------------------------------------------------------------


def adain(x: Tensor, scale: Tensor, bias: Tensor, *, eps: float = 1e-8) -> Tensor:
    """Adaptive instance normalisation: ``scale * (x - mean) / sqrt(var + eps) + bias``.

    Args:
        x: ``[N, C, H, W]`` (any number of spatial dims).
        scale, bias: ``[N, C]`` styles ``y_s`` and ``y_b``.
    Returns:
        ``[N, C, H, W]`` whose every ``(n, c)`` map has mean ``bias[n, c]`` and (population)
        standard deviation ``|scale[n, c]|`` (up to ``eps``).
    """
    if scale.shape != x.shape[:2] or bias.shape != x.shape[:2]:
        raise ValueError(f"adain: styles {tuple(scale.shape)}, {tuple(bias.shape)} must be [N, C] = "
                         f"{tuple(x.shape[:2])}")
    dims = tuple(range(2, x.ndim))
    x = x - x.mean(dim=dims, keepdim=True)
    x = x * torch.rsqrt(x.square().mean(dim=dims, keepdim=True) + eps)
    view = (*x.shape[:2], *([1] * len(dims)))
    return x * scale.reshape(view) + bias.reshape(view)


def style_epilogue(
    x: Tensor, noise: Tensor | None, strength: Tensor, bias: Tensor, scale: Tensor, shift: Tensor, *,
    alpha: float = 0.2, gain: float = 1.0, eps: float = 1e-8,
) -> Tensor:
    """StyleGAN's layer epilogue (Karras et al. 2019, figure 1b): noise injection with per-channel
    strength, bias, leaky ReLU, AdaIN: ``adain(lrelu(x + strength * noise + bias) * gain, scale, shift)``.

    Args:
        x: ``[N, C, H, W]``; noise: ``[N or 1, 1, H, W]`` or ``None``; strength, bias: ``[C]``;
        scale, shift: ``[N, C]``.
    """
    if noise is not None:
        x = x + noise * strength.reshape(1, -1, 1, 1)
    x = bias_act(x, bias, act="lrelu", alpha=alpha, gain=gain)
    return adain(x, scale, shift, eps=eps)


def pixel_norm(x: Tensor, *, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """``x / sqrt(mean(x^2 over dim) + eps)``: unit mean square over the channels at every pixel."""
    return x * torch.rsqrt(x.square().mean(dim=dim, keepdim=True) + eps)


def stddev_group_size(batch: int, group_size: int) -> int:
    """The largest divisor of ``batch`` that is ``<= group_size`` (PGGAN's group of 4 when it fits)."""
    g = max(1, min(group_size, batch))
    while batch % g:
        g -= 1
    return g


def minibatch_stddev(x: Tensor, *, group_size: int = 4, num_channels: int = 1, eps: float = 1e-8) -> Tensor:
    """Append the minibatch standard deviation as ``num_channels`` extra feature maps.

    The batch is split into groups of ``G = stddev_group_size(N, group_size)`` samples (consecutive
    samples ``n, n + N/G, ...`` form a group, as NVlabs' reshape does). Within a group, the standard
    deviation of every feature at every position is averaged over features (split into
    ``num_channels`` parts) and positions, giving one value per group and part, tiled over the
    group's samples and the image. The standard deviation is ``sqrt(var + eps) - sqrt(eps)``: smooth
    at zero variance (as NVlabs' ``sqrt(var + eps)``) and exactly zero for identical samples.

    ``[N, C, H, W] -> [N, C + num_channels, H, W]``.
    """
    n, c, h, w = x.shape
    if c % num_channels:
        raise ValueError(f"minibatch_stddev: {c} channels do not split into num_channels={num_channels} parts")
    g = stddev_group_size(n, group_size)
    y = x.reshape(g, n // g, num_channels, c // num_channels, h, w)  # [G, M, F, c, H, W]
    y = y - y.mean(dim=0)
    var = y.square().mean(dim=0)  # [M, F, c, H, W]
    std = (var + eps).sqrt() - var.new_tensor(eps).sqrt()
    std = std.mean(dim=(2, 3, 4))  # [M, F]
    std = std.reshape(-1, num_channels, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
    return torch.cat([x, std.to(x.dtype)], dim=1)


# -- FIR resampling --------------------------------------------------------------------------------


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    a, b = v
    return int(a), int(b)


def _padding(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """``(x0, x1, y0, y1)`` from an int, ``(px, py)`` or ``(x0, x1, y0, y1)``."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    p = [int(v) for v in padding]
    if len(p) == 2:
        return p[0], p[0], p[1], p[1]
    if len(p) != 4:
        raise ValueError(f"upfirdn2d: padding must be an int, 2 or 4 ints (got {padding!r})")
    return p[0], p[1], p[2], p[3]


def setup_filter(
    f: Sequence[float] | Tensor | None, *, normalize: bool = True, flip_filter: bool = False, gain: float = 1.0,
    separable: bool | None = None, device: torch.device | None = None,
) -> Tensor:
    """A FIR filter tensor for :func:`upfirdn2d`, as NVlabs' ``setup_filter``.

    A 1-D list becomes its outer product (2-D, non-separable) unless ``separable`` (default: only for
    8 taps or more); ``normalize`` makes the taps sum to 1; ``gain`` scales the filter's response.
    ``setup_filter([1, 2, 1])`` is ``[[1, 2, 1], [2, 4, 2], [1, 2, 1]] / 16``.
    """
    t = torch.as_tensor(1.0 if f is None else f, dtype=torch.float32, device=device)
    if t.ndim == 0:
        t = t[None]
    if t.ndim not in (1, 2) or t.numel() == 0:
        raise ValueError(f"setup_filter: expected 1-D or 2-D taps, got shape {tuple(t.shape)}")
    if separable is None:
        separable = t.ndim == 1 and t.numel() >= 8
    if t.ndim == 1 and not separable:
        t = torch.outer(t, t)
    if normalize:
        t = t / t.sum()
    if flip_filter:
        t = t.flip(list(range(t.ndim)))
    return t * (gain ** (t.ndim / 2))


def filter_size(f: Tensor | None) -> tuple[int, int]:
    """``(width, height)`` of a filter from :func:`setup_filter`."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def upfirdn2d(
    x: Tensor, f: Tensor | None, *, up: int | Sequence[int] = 1, down: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0, flip_filter: bool = False, gain: float = 1.0,
) -> Tensor:
    """Upsample, FIR-filter and downsample a batch of images (NVlabs ``upfirdn2d`` semantics).

    1. Upsample by inserting ``up - 1`` zeros after every pixel.
    2. Pad by ``padding = (x0, x1, y0, y1)`` zeros (a negative value crops).
    3. Convolve with ``f`` (a true convolution: ``f`` is flipped unless ``flip_filter``), scaled by
       ``gain`` (``gain ** (ndim / 2)`` per separable pass).
    4. Downsample by keeping every ``down``-th pixel.

    ``[N, C, H, W] -> [N, C, (H * up_y + y0 + y1 - fh) // down_y + 1, ...]``.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d: expected [N, C, H, W], got shape {tuple(x.shape)}")
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _padding(padding)
    if min(upx, upy, downx, downy) < 1:
        raise ValueError(f"upfirdn2d: up and down must be >= 1 (got up={up}, down={down})")
    n, c, h, w = x.shape
    # 1. zero insertion
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape(n, c, h * upy, w * upx)
    # 2. pad or crop
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    # 3. FIR filter (depthwise convolution; conv2d correlates, so flip for a true convolution)
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].expand(c, 1, *f.shape), groups=c)
    else:
        x = F.conv2d(x, f[None, None, None].expand(c, 1, 1, f.shape[0]), groups=c)
        x = F.conv2d(x, f[None, None, :, None].expand(c, 1, f.shape[0], 1), groups=c)
    # 4. decimation
    return x[:, :, ::downy, ::downx]


def upsample2d(x: Tensor, f: Tensor | None, *, up: int = 2, padding: int | Sequence[int] = 0,
               flip_filter: bool = False, gain: float = 1.0) -> Tensor:
    """Upsample by ``up`` with FIR filter ``f``, keeping the image centred: ``[H, W] -> [H*up, W*up]``.

    With ``f = setup_filter([1, 2, 1])`` and ``up = 2`` this is bilinear interpolation (StyleGAN's
    "bilinear up"). The filter is scaled by ``up**2`` to keep the mean of the signal.
    """
    upx, upy = _pair(up)
    px0, px1, py0, py1 = _padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x: Tensor, f: Tensor | None, *, down: int = 2, padding: int | Sequence[int] = 0,
                 flip_filter: bool = False, gain: float = 1.0) -> Tensor:
    """Low-pass filter with ``f`` and downsample by ``down``: ``[H, W] -> [H/down, W/down]``."""
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain)


def filter2d(x: Tensor, f: Tensor | None, *, padding: int | Sequence[int] = 0, flip_filter: bool = False,
             gain: float = 1.0) -> Tensor:
    """Filter with ``f`` at the same resolution (a blur for a low-pass ``f``)."""
    px0, px1, py0, py1 = _padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain)
