"""``minibatch_stddev``: PGGAN's minibatch standard deviation feature (Karras et al. 2018,
arXiv:1710.10196, section 3), appended as ``num_channels`` extra maps before a discriminator's last block.

Kernel: ``csrc/norm.cu``, the ``[M, F]`` group statistic, each (group member, feature part) row split
over many blocks whose partial sums are added in a fixed order (deterministic); the tiling and
concatenation around it are plain PyTorch. The input is made contiguous (a copy for other layouts).
A backward taken with ``create_graph=True`` (R1 and WGAN-GP reach this op at 4x4) differentiates the
reference formula, correct to any order.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.autograd import Function

from .common import acc_dtype
from .dispatch import backend_for
from .verify import Case, KernelOp


def stddev_group_size(batch: int, group_size: int) -> int:
    """The largest divisor of ``batch`` that is ``<= group_size`` (PGGAN's group of 4 when it fits)."""
    g = max(1, min(group_size, batch))
    while batch % g:
        g -= 1
    return g


def _check(x: Tensor, num_channels: int) -> None:
    if x.shape[1] % num_channels:
        raise ValueError(f"minibatch_stddev: {x.shape[1]} channels do not split into num_channels={num_channels} "
                         "parts")


def reference(x: Tensor, *, group_size: int = 4, num_channels: int = 1, eps: float = 1e-8) -> Tensor:
    """Append the minibatch standard deviation as ``num_channels`` extra feature maps.

    The batch is split into groups of ``G = stddev_group_size(N, group_size)`` samples (consecutive
    samples ``n, n + N/G, ...`` form a group, as NVlabs' reshape does). Within a group, the standard
    deviation of every feature at every position is averaged over features (split into
    ``num_channels`` parts) and positions, giving one value per group and part, tiled over the
    group's samples and the image. The standard deviation is ``sqrt(var + eps) - sqrt(eps)``: smooth
    at zero variance (as NVlabs' ``sqrt(var + eps)``) and exactly zero for identical samples.

    ``[N, C, H, W] -> [N, C + num_channels, H, W]``.
    """
    _check(x, num_channels)
    n, c, h, w = x.shape
    g = stddev_group_size(n, group_size)
    y = x.reshape(g, n // g, num_channels, c // num_channels, h, w)  # [G, M, F, c, H, W]
    y = y - y.mean(dim=0)
    var = y.square().mean(dim=0)  # [M, F, c, H, W]
    std = (var + eps).sqrt() - var.new_tensor(eps).sqrt()
    std = std.mean(dim=(2, 3, 4))  # [M, F]
    std = std.reshape(-1, num_channels, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
    return torch.cat([x, std.to(x.dtype)], dim=1)


class Primitives:
    @staticmethod
    def _groups(x: Tensor, G: int, F_: int) -> Tensor:
        n, c, h, w = x.shape
        return x.to(acc_dtype(x.dtype)).reshape(G, n // G, F_, (c // F_) * h * w)

    @staticmethod
    def mbstd_fwd(x: Tensor, G: int, F_: int, eps: float) -> Tensor:
        """The ``[M, F]`` statistic of contiguous ``x``, in the accumulation dtype."""
        y = Primitives._groups(x, G, F_)
        var = (y - y.mean(0)).square().mean(0)
        return ((var + eps).sqrt() - math.sqrt(eps)).mean(2)

    @staticmethod
    def mbstd_bwd(dstat: Tensor, x: Tensor, G: int, F_: int, eps: float) -> Tensor:
        y = Primitives._groups(x, G, F_)
        d = y - y.mean(0)
        std = (d.square().mean(0) + eps).sqrt()
        k = y.shape[3]
        return (d * (dstat.to(y.dtype)[..., None] / (k * G * std))).reshape(x.shape).to(x.dtype)


class _MbstdStat(Function):
    """The ``[M, F]`` group statistic."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, prim: Any, G: int, F_: int, eps: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.prim, ctx.cfg = prim, (G, F_, eps)
        return prim.mbstd_fwd(x, G, F_, eps)

    @staticmethod
    def backward(ctx: Any, dstat: Tensor) -> tuple:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        G, F_, eps = ctx.cfg
        if torch.is_grad_enabled():
            y = x.to(acc_dtype(x.dtype)).reshape(G, x.shape[0] // G, F_, -1)
            var = (y - y.mean(0)).square().mean(0)
            stat = ((var + eps).sqrt() - math.sqrt(eps)).mean(2)
            return torch.autograd.grad(stat, x, dstat, create_graph=True)[0], None, None, None, None
        return ctx.prim.mbstd_bwd(dstat.to(acc_dtype(x.dtype)).contiguous(), x, G, F_, eps), None, None, None, None


def kernel(x: Tensor, *, group_size: int = 4, num_channels: int = 1, eps: float = 1e-8, prim: Any) -> Tensor:
    """:func:`reference` with the statistic on the primitives ``prim`` (``x`` made contiguous)."""
    _check(x, num_channels)
    n, _, h, w = x.shape
    g = stddev_group_size(n, group_size)
    stat = _MbstdStat.apply(x.contiguous(), prim, g, num_channels, float(eps))  # [M, F]
    std = stat.to(x.dtype).reshape(-1, num_channels, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
    return torch.cat([x, std], dim=1)


def minibatch_stddev(x: Tensor, *, group_size: int = 4, num_channels: int = 1, eps: float = 1e-8) -> Tensor:
    """:func:`reference`, run by the backend ``GANFORGE_KERNELS`` picks for ``x``."""
    return backend_for("minibatch_stddev", x).ops["minibatch_stddev"](x, group_size=group_size,
                                                                      num_channels=num_channels, eps=eps)


def cases() -> list[Case]:
    """Batch 1 (a group of one: zero variance), a batch the group size does not divide, groups of 4,
    two feature parts, 1x1 and odd sizes, 7 channels, three layouts."""
    g = torch.Generator().manual_seed(60)

    def r(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return [
        Case("batch 1", (r(1, 3, 4, 4),), {"group_size": 4}),
        Case("batch 3, group 4 -> 3", (r(3, 7, 5, 3) * 2,), {"group_size": 4}, "channels-last"),
        Case("batch 8, group 4, 1x1", (r(8, 7, 1, 1),), {"group_size": 4}, "strided"),
        Case("batch 6, two parts", (r(6, 4, 3, 3),), {"group_size": 4, "num_channels": 2}, "channels-last"),
        Case("batch 8, 4x4", (r(8, 16, 4, 4),), {"group_size": 4}, "strided"),
    ]


OP = KernelOp("minibatch_stddev", reference, kernel, cases, double=True)
