"""``adain``: adaptive instance normalisation, ``AdaIN(x_i, y) = y_s,i (x_i - mu(x_i)) / sigma(x_i) + y_b,i``
(Huang & Belongie 2017, arXiv:1703.06868; StyleGAN, Karras et al. 2019, arXiv:1812.04948, eq. 1).

Kernel: ``csrc/norm.cu``'s *plane norm*, one block per ``(n, c)`` plane: reduce, then write; one
kernel backward (dx, dscale, dshift). The same kernel, with its ``style`` flag, is StyleGAN's layer
epilogue (:mod:`.style_epilogue`), so its primitives and Function live here. A backward taken with
``create_graph=True`` differentiates the reference formula instead (correct to any order; AdaIN sits
in the generator). Layouts: any whose spatial dims merge into one stride (contiguous, channels-last).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import Function

from .common import acc_dtype, dense, like
from .dispatch import backend_for
from .verify import Case, KernelOp

# -- the reference ----------------------------------------------------------------------------------------


def _check_styles(x: Tensor, scale: Tensor, bias: Tensor) -> None:
    if scale.shape != x.shape[:2] or bias.shape != x.shape[:2]:
        raise ValueError(f"adain: styles {tuple(scale.shape)}, {tuple(bias.shape)} must be [N, C] = "
                         f"{tuple(x.shape[:2])}")


def reference(x: Tensor, scale: Tensor, bias: Tensor, *, eps: float = 1e-8) -> Tensor:
    """Adaptive instance normalisation: ``scale * (x - mean) / sqrt(var + eps) + bias``.

    Args:
        x: ``[N, C, H, W]`` (any number of spatial dims).
        scale, bias: ``[N, C]`` styles ``y_s`` and ``y_b``.
    Returns:
        ``[N, C, H, W]`` whose every ``(n, c)`` map has mean ``bias[n, c]`` and (population)
        standard deviation ``|scale[n, c]|`` (up to ``eps``).
    """
    _check_styles(x, scale, bias)
    dims = tuple(range(2, x.ndim))
    x = x - x.mean(dim=dims, keepdim=True)
    x = x * torch.rsqrt(x.square().mean(dim=dims, keepdim=True) + eps)
    view = (*x.shape[:2], *([1] * len(dims)))
    return x * scale.reshape(view) + bias.reshape(view)


# -- the primitives in plain PyTorch: the contract of csrc/norm.cu's plane norm ---------------------------


class Primitives:
    @staticmethod
    def _act(x: Tensor, noise: Tensor | None, strength: Tensor | None, bias: Tensor | None, style: bool,
             alpha: float, gain: float) -> tuple[Tensor, Tensor]:
        z = x.to(acc_dtype(x.dtype))
        if style:
            if noise is not None:
                z = z + noise.to(z.dtype)[:, None, :] * strength.to(z.dtype)[None, :, None]  # type: ignore[union-attr]
            z = z + bias.to(z.dtype)[None, :, None]  # type: ignore[union-attr]
            return z, F.leaky_relu(z, alpha) * gain
        return z, z

    @staticmethod
    def plane_norm_fwd(x: Tensor, noise: Tensor | None, strength: Tensor | None, bias: Tensor | None, scale: Tensor,
                       shift: Tensor, style: bool, alpha: float, gain: float, eps: float) -> list[Tensor]:
        _, a = Primitives._act(x, noise, strength, bias, style, alpha, gain)
        mean = a.mean(2)
        rstd = torch.rsqrt((a - mean[..., None]).square().mean(2) + eps)
        y = (a - mean[..., None]) * rstd[..., None] * scale.to(a.dtype)[..., None] + shift.to(a.dtype)[..., None]
        return [y.to(x.dtype), mean, rstd]

    @staticmethod
    def plane_norm_bwd(dy: Tensor, x: Tensor, noise: Tensor | None, strength: Tensor | None, bias: Tensor | None,
                       scale: Tensor, mean: Tensor, rstd: Tensor, style: bool, alpha: float,
                       gain: float) -> list[Tensor]:
        z, a = Primitives._act(x, noise, strength, bias, style, alpha, gain)
        g = dy.to(a.dtype)
        xh = (a - mean[..., None]) * rstd[..., None]
        sdy, sdyx = g.sum(2), (g * xh).sum(2)
        sc = scale.to(a.dtype)
        n = a.shape[2]
        d = rstd[..., None] * (g * sc[..., None] - (sdy * sc / n)[..., None] - xh * (sdyx * sc / n)[..., None])
        zeros = torch.zeros_like(sdy)
        dbias, dstrength = zeros, zeros
        if style:
            d = d * gain * torch.where(z > 0, z.new_ones(()), z.new_full((), alpha))  # in z's dtype
            dbias = d.sum(2)
            dstrength = (d * noise.to(d.dtype)[:, None, :]).sum(2) if noise is not None else zeros
        return [d.to(x.dtype), sdyx, sdy, dbias, dstrength]


# -- autograd over the primitives ---------------------------------------------------------------------------


def plane_formula(x: Tensor, noise: Tensor | None, strength: Tensor | None, bias: Tensor | None, scale: Tensor,
                   shift: Tensor, style: bool, alpha: float, gain: float, eps: float) -> Tensor:
    """The reference maths on ``[N, C, L]`` planes, differentiable to any order."""
    if style:
        if noise is not None:
            x = x + noise[:, None, :] * strength[None, :, None]  # type: ignore[index]
        x = F.leaky_relu(x + bias[None, :, None], alpha) * gain  # type: ignore[index]
    d = x - x.mean(2, keepdim=True)
    return d * torch.rsqrt(d.square().mean(2, keepdim=True) + eps) * scale[..., None] + shift[..., None]


class PlaneNorm(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, noise: Tensor | None, strength: Tensor | None,  # type: ignore[override]
                bias: Tensor | None, scale: Tensor, shift: Tensor, prim: Any, cfg: tuple) -> Tensor:
        y, mean, rstd = prim.plane_norm_fwd(x, noise, strength, bias, scale, shift, *cfg)
        ctx.save_for_backward(x, noise, strength, bias, scale, shift, mean, rstd)
        ctx.prim, ctx.cfg = prim, cfg
        return y

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple:  # type: ignore[override]
        x, noise, strength, bias, scale, shift, mean, rstd = ctx.saved_tensors
        style, alpha, gain, _ = ctx.cfg
        inputs = (x, noise, strength, bias, scale, shift)
        grads: list[Tensor | None] = [None] * 6
        if torch.is_grad_enabled():  # create_graph: differentiate the formula, correct to any order
            wanted = [i for i in range(6) if ctx.needs_input_grad[i]]
            y = plane_formula(*inputs, *ctx.cfg)
            found = torch.autograd.grad(y, [inputs[i] for i in wanted], dy, create_graph=True, allow_unused=True)
            for i, g in zip(wanted, found, strict=True):
                grads[i] = g
            return (*grads, None, None)
        dx, dscale, dshift, dbias, dstrength = ctx.prim.plane_norm_bwd(
            like(dy, x), x, noise, strength, bias, scale, mean, rstd, style, alpha, gain)
        grads[0] = dx if ctx.needs_input_grad[0] else None
        if ctx.needs_input_grad[1]:  # dz * strength summed over the channels, and over the batch for shared noise
            dn = (dx.to(acc_dtype(dx.dtype)) * strength.to(acc_dtype(dx.dtype))[None, :, None]).sum(1)
            grads[1] = (dn.sum(0, keepdim=True) if noise.shape[0] == 1 else dn).to(noise.dtype)
        if ctx.needs_input_grad[2]:
            grads[2] = dstrength.sum(0).to(strength.dtype)
        if ctx.needs_input_grad[3]:
            grads[3] = dbias.sum(0).to(bias.dtype)
        grads[4] = dscale.to(scale.dtype) if ctx.needs_input_grad[4] else None
        grads[5] = dshift.to(shift.dtype) if ctx.needs_input_grad[5] else None
        return (*grads, None, None)


def planes(x: Tensor) -> Tensor:
    """``[N, C, *spatial]`` as dense ``[N, C, L]`` (a view for contiguous and channels-last inputs)."""
    return dense(x.reshape(x.shape[0], x.shape[1], -1))


def kernel(x: Tensor, scale: Tensor, bias: Tensor, *, eps: float = 1e-8, prim: Any) -> Tensor:
    """:func:`reference` on the primitives ``prim`` (``[N, C, *spatial]``, styles ``[N, C]``)."""
    _check_styles(x, scale, bias)
    if x.ndim < 3 or x[0, 0].numel() == 0:
        return reference(x, scale, bias, eps=eps)
    scale, bias = scale.to(x.dtype).contiguous(), bias.to(x.dtype).contiguous()
    y = PlaneNorm.apply(planes(x), None, None, None, scale, bias, prim, (False, 0.0, 1.0, float(eps)))
    return y.reshape(x.shape)


def adain(x: Tensor, scale: Tensor, bias: Tensor, *, eps: float = 1e-8) -> Tensor:
    """:func:`reference`, run by the backend ``GANFORGE_KERNELS`` picks for ``x``."""
    return backend_for("adain", x).ops["adain"](x, scale, bias, eps=eps)


# -- self-verification ---------------------------------------------------------------------------------------


def cases() -> list[Case]:
    """1x1 planes (zero variance), odd sizes, batch 1, 7 channels, three spatial dims, three layouts."""
    g = torch.Generator().manual_seed(30)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    out = []
    for shape, layout in [((2, 3, 1, 1), "contiguous"), ((1, 5, 3, 3), "channels-last"), ((2, 7, 13, 11), "strided"),
                          ((2, 7, 13, 11), "channels-last"), ((3, 4, 2, 3, 2), "contiguous")]:
        n, c = shape[:2]
        out.append(Case(f"{'x'.join(map(str, shape))}", (r(*shape) * 3 + 1, r(n, c), r(n, c)), {}, layout,
                        grad=(0, 1, 2)))
    return out


OP = KernelOp("adain", reference, kernel, cases)
