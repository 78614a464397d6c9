"""``pixel_norm``: ``b = a / sqrt(mean_j(a_j^2) + eps)`` over the channels at every pixel (PGGAN,
Karras et al. 2018, arXiv:1710.10196, section 4.2), also StyleGAN's normalisation of z.

Kernel: ``csrc/norm.cu``, one thread per pixel looping over the channels, in place of any dense
layout (channels-last without a copy); one kernel backward. A backward taken with
``create_graph=True`` differentiates the reference formula (correct to any order).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.autograd import Function

from .common import acc_dtype, dense, like
from .dispatch import backend_for
from .verify import Case, KernelOp


def reference(x: Tensor, *, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """``x / sqrt(mean(x^2 over dim) + eps)``: unit mean square over the channels at every pixel."""
    return x * torch.rsqrt(x.square().mean(dim=dim, keepdim=True) + eps)


class Primitives:
    @staticmethod
    def pixel_norm(x: Tensor, dy: Tensor | None, eps: float) -> Tensor:
        """``x``: dense ``[outer, C, inner]``; ``dy`` None: the forward, else the gradient for ``dy``."""
        v = x.to(acc_dtype(x.dtype))
        r = torch.rsqrt(v.square().mean(1, keepdim=True) + eps)
        if dy is None:
            return (v * r).to(x.dtype)
        g = dy.to(v.dtype)
        return (r * g - v * r**3 * (g * v).mean(1, keepdim=True)).to(x.dtype)


class _PixelNorm(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, prim: Any, eps: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.prim, ctx.eps = prim, eps
        return prim.pixel_norm(x, None, eps)

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            y = reference(x, dim=1, eps=ctx.eps)
            return torch.autograd.grad(y, x, dy, create_graph=True)[0], None, None
        return ctx.prim.pixel_norm(x, like(dy, x), ctx.eps), None, None


def kernel(x: Tensor, *, dim: int = 1, eps: float = 1e-8, prim: Any) -> Tensor:
    """:func:`reference` on the primitives ``prim`` (any dense layout, e.g. channels-last, without a copy)."""
    if x.ndim == 0 or x.numel() == 0:
        return reference(x, dim=dim, eps=eps)
    dim = dim % x.ndim
    outer, inner = math.prod(x.shape[:dim]), math.prod(x.shape[dim + 1:])
    try:
        x3 = x.view(outer, x.shape[dim], inner)
    except RuntimeError:  # not expressible as a view: copy
        x3 = x.contiguous().view(outer, x.shape[dim], inner)
    return _PixelNorm.apply(dense(x3), prim, float(eps)).view(x.shape)


def pixel_norm(x: Tensor, *, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """:func:`reference`, run by the backend ``GANFORGE_KERNELS`` picks for ``x``."""
    return backend_for("pixel_norm", x).ops["pixel_norm"](x, dim=dim, eps=eps)


def cases() -> list[Case]:
    """One channel, 7 and 512 channels, 1x1 and odd sizes, batch 1, the mapping network's ``[N, w_dim]``,
    another ``dim``, three layouts."""
    g = torch.Generator().manual_seed(50)

    def r(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return [
        Case("1x1x1x1", (r(1, 1, 1, 1),)),
        Case("2x7x13x11", (r(2, 7, 13, 11) * 3,), layout="channels-last"),
        Case("2x7x13x11", (r(2, 7, 13, 11),), layout="strided"),
        Case("1x512x2x3", (r(1, 512, 2, 3),), layout="channels-last"),
        Case("z 5x7", (r(5, 7),)),
        Case("dim 0 of 3x4x2x3", (r(3, 4, 2, 3),), {"dim": 0}),
    ]


OP = KernelOp("pixel_norm", reference, kernel, cases)
