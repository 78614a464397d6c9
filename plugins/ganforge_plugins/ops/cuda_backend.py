"""The CUDA backend of :mod:`ganforge_plugins.ops`: fused kernels (``csrc/``) behind autograd Functions.

Kernels (CUDA C++ in ``csrc/``, float64 / float32 / float16 / bfloat16, accumulating in float32,
float64 in float64): ``bias_act`` (NVlabs StyleGAN2-ADA semantics, first and second derivatives),
``upfirdn2d`` (Karras et al. 2020, arXiv:2006.06676, ``torch_utils/ops/upfirdn2d``), ``adain``
(Huang & Belongie 2017, arXiv:1703.06868), ``style_epilogue`` (StyleGAN, arXiv:1812.04948, figure 1b:
noise * strength + bias, leaky ReLU * gain, AdaIN in one pass forward and one backward),
``pixel_norm`` (PGGAN, arXiv:1710.10196, section 4.2) and ``minibatch_stddev`` (PGGAN section 3).
:mod:`.reference` is their specification.

Autograd: every op is a :class:`torch.autograd.Function` over a *primitives* object, the loaded
extension on the GPU or :class:`RefPrimitives` (the same contract in plain PyTorch), so the wiring
below, backward and double backward included, is tested on the CPU with ``gradcheck`` /
``gradgradcheck``. Gradients of any order:

- ``upfirdn2d``: the gradient is ``upfirdn2d`` with the filter flipped and up / down swapped, computed
  by the same Function, so every order runs on the kernel (R1 through a blurred discriminator).
- ``bias_act``: the gradient ``dy * f'(x + b)`` is a Function whose own gradient is itself (for
  ``dy``) and the kernel's second-derivative mode (for ``x`` and ``b``); third order raises.
- ``adain``, ``style_epilogue``, ``pixel_norm``, ``minibatch_stddev``: the first-order backward is a
  kernel; a backward taken with ``create_graph=True`` differentiates the reference formula instead
  (correct to any order; these ops sit in the generator or at 4x4 in the discriminator).

Layouts: ``bias_act`` and ``pixel_norm`` work on any dense layout in place of its strides
(contiguous, channels-last, any permutation); ``adain`` / ``style_epilogue`` on any layout whose
spatial dims merge into one stride (contiguous and channels-last); ``upfirdn2d`` on any strides
(output channels-last when the input is, else contiguous). Anything else, and ``minibatch_stddev``
always, is made contiguous first (a copy). The output keeps the input's layout where it is dense.

Build: on first use (or ``ganforge kernels build``) with :func:`torch.utils.cpp_extension.load`
into ``$GANFORGE_KERNELS_CACHE`` (default ``~/.cache/ganforge/kernels``)/``<key>``, the key hashing
the sources, the PyTorch, CUDA and nvcc versions and the GPU architectures, under a file lock; the
module that ``load()`` returns is used (it is not looked up in ``sys.modules``). With
``GANFORGE_KERNELS=auto`` a machine that cannot build or run it (no CUDA device, no nvcc, no ninja,
an unsupported GPU, a compile error) uses the reference with one :class:`KernelFallbackWarning` that
names the reason.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import Function

from . import reference
from .reference import ACTIVATIONS, stddev_group_size

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = ("ops.cpp", "bias_act.cu", "upfirdn2d.cu", "norm.cu")
HEADERS = ("common.cuh",)
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MIN_CAPABILITY = (7, 0)  # Volta: bfloat16 storage and __shfl_down_sync on every type used
ACT_IDS = {name: i for i, name in enumerate(ACTIVATIONS)}  # the order of enum Act in bias_act.cu
LINEAR_PIECEWISE = ("linear", "relu", "lrelu")  # second derivative zero


class KernelFallbackWarning(RuntimeWarning):
    """GANFORGE_KERNELS=auto runs the reference ops because the CUDA kernels cannot be used."""


class KernelsUnavailable(RuntimeError):
    """The CUDA extension cannot be built or loaded here; the message says why."""


# -- primitives: the kernels' contract, and the same contract in plain PyTorch ---------------------------


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


class RefPrimitives:
    """The extension's functions in plain PyTorch (same arguments, same results up to rounding).

    Injected into the Functions below in CPU tests, so that the autograd wiring that runs on the GPU
    is checked against :mod:`.reference` without one.
    """

    @staticmethod
    def bias_act(x: Tensor, b: Tensor | None, dy: Tensor | None, ddx: Tensor | None, mode: int, dim: int, act: int,
                 alpha: float, gain: float, clamp: float) -> Tensor:
        name = list(ACTIVATIONS)[act]
        z = x.to(_acc(x.dtype))
        if b is not None:
            z = z + b.to(z.dtype).reshape([-1 if i == dim else 1 for i in range(x.ndim)])
        with torch.enable_grad():
            zz = z.detach().requires_grad_(True)
            f = ACTIVATIONS[name].func(zz, alpha)  # type: ignore[operator]
            (d1,) = torch.autograd.grad(f.sum(), zz, create_graph=mode == 2)
            d2 = torch.autograd.grad(d1.sum(), zz)[0] if mode == 2 and d1.requires_grad else torch.zeros_like(z)
        v = f.detach() * gain
        mask = torch.ones_like(v, dtype=torch.bool) if clamp < 0 else (v >= -clamp) & (v <= clamp)
        if mode == 0:
            out = v.clamp(-clamp, clamp) if clamp >= 0 else v
        elif mode == 1:
            out = torch.where(mask, dy.to(z.dtype) * d1.detach() * gain, 0)  # type: ignore[union-attr]
        else:
            out = torch.where(mask, ddx.to(z.dtype) * dy.to(z.dtype) * d2.detach() * gain, 0)  # type: ignore[union-attr]
        return out.to(x.dtype)

    @staticmethod
    def upfirdn2d(x: Tensor, f: Tensor, upx: int, upy: int, downx: int, downy: int, px0: int, px1: int, py0: int,
                  py1: int, flip: bool) -> Tensor:
        with torch.no_grad():
            y = reference.upfirdn2d(x.to(_acc(x.dtype)), f, up=(upx, upy), down=(downx, downy),
                                    padding=(px0, px1, py0, py1), flip_filter=flip)
        return y.to(x.dtype)

    @staticmethod
    def _act(x: Tensor, noise: Tensor | None, strength: Tensor | None, bias: Tensor | None, style: bool,
             alpha: float, gain: float) -> tuple[Tensor, Tensor]:
        z = x.to(_acc(x.dtype))
        if style:
            if noise is not None:
                z = z + noise.to(z.dtype)[:, None, :] * strength.to(z.dtype)[None, :, None]  # type: ignore[union-attr]
            z = z + bias.to(z.dtype)[None, :, None]  # type: ignore[union-attr]
            return z, F.leaky_relu(z, alpha) * gain
        return z, z

    @staticmethod
    def plane_norm_fwd(x: Tensor, noise: Tensor | None, strength: Tensor | None, bias: Tensor | None, scale: Tensor,
                       shift: Tensor, style: bool, alpha: float, gain: float, eps: float) -> list[Tensor]:
        _, a = RefPrimitives._act(x, noise, strength, bias, style, alpha, gain)
        mean = a.mean(2)
        rstd = torch.rsqrt((a - mean[..., None]).square().mean(2) + eps)
        y = (a - mean[..., None]) * rstd[..., None] * scale.to(a.dtype)[..., None] + shift.to(a.dtype)[..., None]
        return [y.to(x.dtype), mean, rstd]

    @staticmethod
    def plane_norm_bwd(dy: Tensor, x: Tensor, noise: Tensor | None, strength: Tensor | None, bias: Tensor | None,
                       scale: Tensor, mean: Tensor, rstd: Tensor, style: bool, alpha: float,
                       gain: float) -> list[Tensor]:
        z, a = RefPrimitives._act(x, noise, strength, bias, style, alpha, gain)
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

    @staticmethod
    def pixel_norm(x: Tensor, dy: Tensor | None, eps: float) -> Tensor:
        v = x.to(_acc(x.dtype))
        r = torch.rsqrt(v.square().mean(1, keepdim=True) + eps)
        if dy is None:
            return (v * r).to(x.dtype)
        g = dy.to(v.dtype)
        return (r * g - v * r**3 * (g * v).mean(1, keepdim=True)).to(x.dtype)

    @staticmethod
    def _groups(x: Tensor, G: int, F_: int) -> Tensor:
        n, c, h, w = x.shape
        return x.to(_acc(x.dtype)).reshape(G, n // G, F_, (c // F_) * h * w)

    @staticmethod
    def mbstd_fwd(x: Tensor, G: int, F_: int, eps: float) -> Tensor:
        y = RefPrimitives._groups(x, G, F_)
        var = (y - y.mean(0)).square().mean(0)
        return ((var + eps).sqrt() - math.sqrt(eps)).mean(2)

    @staticmethod
    def mbstd_bwd(dstat: Tensor, x: Tensor, G: int, F_: int, eps: float) -> Tensor:
        y = RefPrimitives._groups(x, G, F_)
        d = y - y.mean(0)
        std = (d.square().mean(0) + eps).sqrt()
        k = y.shape[3]
        return (d * (dstat.to(y.dtype)[..., None] / (k * G * std))).reshape(x.shape).to(x.dtype)


# -- layout helpers ---------------------------------------------------------------------------------------


def is_dense(x: Tensor) -> bool:
    """Whether ``x`` fills its storage span exactly in some dimension order (contiguous, channels-last,
    any permutation): ATen's ``is_non_overlapping_and_dense``, which the kernels require."""
    expected = 1
    dims = sorted(((st, s) for s, st in zip(x.shape, x.stride(), strict=True) if s != 1))
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def _dense(x: Tensor) -> Tensor:
    """``x`` itself when it is dense in some dimension order (the kernels walk its storage), else a copy."""
    return x if is_dense(x) else x.contiguous()


def _like(t: Tensor, ref: Tensor) -> Tensor:
    """``t`` with ``ref``'s strides and dtype (gradients can arrive in another layout than the input)."""
    if t.stride() == ref.stride() and t.dtype == ref.dtype:
        return t
    return torch.empty_like(ref).copy_(t)


def _sum_except(t: Tensor, dim: int) -> Tensor:
    return t.sum(dim=[i for i in range(t.ndim) if i != dim])


# -- bias_act ----------------------------------------------------------------------------------------------


class _BiasAct(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, b: Tensor | None, prim: Any, cfg: tuple) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, b)
        ctx.prim, ctx.cfg = prim, cfg
        return prim.bias_act(x, b, None, None, 0, *cfg)

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple:  # type: ignore[override]
        x, b = ctx.saved_tensors
        dx = _BiasActGrad.apply(_like(dy, x), x, b, ctx.prim, ctx.cfg)
        db = _sum_except(dx, ctx.cfg[0]) if b is not None and ctx.needs_input_grad[1] else None
        return dx, db, None, None


class _BiasActGrad(Function):
    """``dx = dy * d/dx clamp(gain * act(x + b))``; differentiable once more."""

    @staticmethod
    def forward(ctx: Any, dy: Tensor, x: Tensor, b: Tensor | None, prim: Any, cfg: tuple) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(dy, x, b)
        ctx.prim, ctx.cfg = prim, cfg
        return prim.bias_act(x, b, dy, None, 1, *cfg)

    @staticmethod
    def backward(ctx: Any, ddx: Tensor) -> tuple:  # type: ignore[override]
        dy, x, b = ctx.saved_tensors
        ddx = _like(ddx, x)
        d_dy = _BiasActGrad.apply(ddx, x, b, ctx.prim, ctx.cfg) if ctx.needs_input_grad[0] else None
        d_x = d_b = None
        act = list(ACTIVATIONS)[ctx.cfg[1]]
        if act not in LINEAR_PIECEWISE and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            d_x = _BiasActGrad2.apply(ddx, dy, x, b, ctx.prim, ctx.cfg)
            d_b = _sum_except(d_x, ctx.cfg[0]) if b is not None and ctx.needs_input_grad[2] else None
        return d_dy, d_x, d_b, None, None


class _BiasActGrad2(Function):
    """``ddx * dy * d2/dx2 clamp(gain * act(x + b))``: the second-order term; not differentiable again."""

    @staticmethod
    def forward(ctx: Any, ddx: Tensor, dy: Tensor, x: Tensor, b: Tensor | None, prim: Any,  # type: ignore[override]
                cfg: tuple) -> Tensor:
        return prim.bias_act(x, b, dy, ddx, 2, *cfg)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple:  # type: ignore[override]
        raise RuntimeError("bias_act (CUDA backend): third-order gradients are not supported; "
                           "use GANFORGE_KERNELS=ref for them")


def bias_act(x: Tensor, b: Tensor | None = None, *, dim: int = 1, act: str = "linear", alpha: float | None = None,
             gain: float | None = None, clamp: float | None = None, prim: Any = None) -> Tensor:
    """:func:`.reference.bias_act` on the kernel (``prim``: the primitives, default the CUDA extension)."""
    if act not in ACTIVATIONS:
        raise ValueError(f"bias_act: unknown activation {act!r}; choose one of {', '.join(ACTIVATIONS)}")
    if x.ndim == 0:
        return reference.bias_act(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
    dim = dim % x.ndim
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[dim]):
        raise ValueError(f"bias_act: bias of shape {tuple(b.shape)} does not match dim {dim} of x {tuple(x.shape)}")
    spec = ACTIVATIONS[act]
    cfg = (dim, ACT_IDS[act], spec.def_alpha if alpha is None else float(alpha),
           spec.def_gain if gain is None else float(gain), -1.0 if clamp is None or clamp < 0 else float(clamp))
    if b is not None:
        b = b.to(x.dtype).contiguous()
    return _BiasAct.apply(_dense(x), b, prim or _primitives(), cfg)


# -- upfirdn2d ---------------------------------------------------------------------------------------------


def _filter2d(f: Tensor | None, x: Tensor, gain: float) -> Tensor:
    """The kernel's filter: 2-D (a separable 1-D filter becomes its outer product), gain applied, in
    float64 for float64 inputs and float32 otherwise."""
    dtype = _acc(x.dtype)
    if f is None:
        return torch.full((1, 1), float(gain), dtype=dtype, device=x.device)
    f = f.detach().to(device=x.device, dtype=dtype)
    f2 = torch.outer(f, f) if f.ndim == 1 else f
    return (f2 * gain).contiguous()


class _UpFirDn2d(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, f: Tensor, prim: Any, up: tuple, down: tuple, pad: tuple,  # type: ignore[override]
                flip: bool) -> Tensor:
        y = prim.upfirdn2d(x, f, up[0], up[1], down[0], down[1], *pad, flip)
        ctx.f, ctx.prim, ctx.cfg = f, prim, (up, down, pad, flip)
        ctx.in_hw, ctx.out_hw = tuple(x.shape[2:]), tuple(y.shape[2:])
        return y

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple:  # type: ignore[override]
        (upx, upy), (downx, downy), (px0, _, py0, _), flip = ctx.cfg
        (in_h, in_w), (out_h, out_w) = ctx.in_hw, ctx.out_hw
        fh, fw = ctx.f.shape
        # the adjoint of FIR resampling: the flipped filter, up and down swapped, the matching padding
        p = (fw - px0 - 1, in_w * upx - out_w * downx + px0 - upx + 1,
             fh - py0 - 1, in_h * upy - out_h * downy + py0 - upy + 1)
        dx = _UpFirDn2d.apply(dy, ctx.f, ctx.prim, (downx, downy), (upx, upy), p, not flip)
        return dx, None, None, None, None, None, None


def upfirdn2d(x: Tensor, f: Tensor | None, *, up: Any = 1, down: Any = 1, padding: Any = 0,
              flip_filter: bool = False, gain: float = 1.0, prim: Any = None) -> Tensor:
    """:func:`.reference.upfirdn2d` on the kernel. A filter that requires grad runs the reference."""
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d: expected [N, C, H, W], got shape {tuple(x.shape)}")
    if f is not None and f.requires_grad:
        return reference.upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    upx, upy = reference._pair(up)
    downx, downy = reference._pair(down)
    if min(upx, upy, downx, downy) < 1:
        raise ValueError(f"upfirdn2d: up and down must be >= 1 (got up={up}, down={down})")
    pad = reference._padding(padding)
    return _UpFirDn2d.apply(x, _filter2d(f, x, gain), prim or _primitives(), (upx, upy), (downx, downy), pad,
                            bool(flip_filter))


# -- adain and style_epilogue --------------------------------------------------------------------------------


def _plane_formula(x: Tensor, noise: Tensor | None, strength: Tensor | None, bias: Tensor | None, scale: Tensor,
                   shift: Tensor, style: bool, alpha: float, gain: float, eps: float) -> Tensor:
    """The reference maths on ``[N, C, L]`` planes, differentiable to any order."""
    if style:
        if noise is not None:
            x = x + noise[:, None, :] * strength[None, :, None]  # type: ignore[index]
        x = F.leaky_relu(x + bias[None, :, None], alpha) * gain  # type: ignore[index]
    d = x - x.mean(2, keepdim=True)
    return d * torch.rsqrt(d.square().mean(2, keepdim=True) + eps) * scale[..., None] + shift[..., None]


class _PlaneNorm(Function):
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
            y = _plane_formula(*inputs, *ctx.cfg)
            found = torch.autograd.grad(y, [inputs[i] for i in wanted], dy, create_graph=True, allow_unused=True)
            for i, g in zip(wanted, found, strict=True):
                grads[i] = g
            return (*grads, None, None)
        dx, dscale, dshift, dbias, dstrength = ctx.prim.plane_norm_bwd(
            _like(dy, x), x, noise, strength, bias, scale, mean, rstd, style, alpha, gain)
        grads[0] = dx if ctx.needs_input_grad[0] else None
        if ctx.needs_input_grad[1]:  # dz * strength summed over the channels, and over the batch for shared noise
            dn = (dx.to(_acc(dx.dtype)) * strength.to(_acc(dx.dtype))[None, :, None]).sum(1)
            grads[1] = (dn.sum(0, keepdim=True) if noise.shape[0] == 1 else dn).to(noise.dtype)
        if ctx.needs_input_grad[2]:
            grads[2] = dstrength.sum(0).to(strength.dtype)
        if ctx.needs_input_grad[3]:
            grads[3] = dbias.sum(0).to(bias.dtype)
        grads[4] = dscale.to(scale.dtype) if ctx.needs_input_grad[4] else None
        grads[5] = dshift.to(shift.dtype) if ctx.needs_input_grad[5] else None
        return (*grads, None, None)


def _planes(x: Tensor) -> Tensor:
    """``[N, C, *spatial]`` as dense ``[N, C, L]`` (a view for contiguous and channels-last inputs)."""
    x3 = x.reshape(x.shape[0], x.shape[1], -1)
    return _dense(x3)


def adain(x: Tensor, scale: Tensor, bias: Tensor, *, eps: float = 1e-8, prim: Any = None) -> Tensor:
    """:func:`.reference.adain` on the kernel (``[N, C, *spatial]``, styles ``[N, C]``)."""
    if scale.shape != x.shape[:2] or bias.shape != x.shape[:2]:
        raise ValueError(f"adain: styles {tuple(scale.shape)}, {tuple(bias.shape)} must be [N, C] = "
                         f"{tuple(x.shape[:2])}")
    if x.ndim < 3 or x[0, 0].numel() == 0:
        return reference.adain(x, scale, bias, eps=eps)
    scale, bias = scale.to(x.dtype).contiguous(), bias.to(x.dtype).contiguous()
    cfg = (False, 0.0, 1.0, float(eps))
    y = _PlaneNorm.apply(_planes(x), None, None, None, scale, bias, prim or _primitives(), cfg)
    return y.reshape(x.shape)


def style_epilogue(x: Tensor, noise: Tensor | None, strength: Tensor, bias: Tensor, scale: Tensor, shift: Tensor, *,
                   alpha: float = 0.2, gain: float = 1.0, eps: float = 1e-8, prim: Any = None) -> Tensor:
    """:func:`.reference.style_epilogue` in one kernel pass forward and one backward. ``noise`` of a
    shape other than ``[N or 1, 1, H, W]`` runs the reference."""
    n, c = x.shape[:2]
    ok = x.ndim == 4 and strength.shape == (c,) and bias.shape == (c,) and x[0, 0].numel() > 0
    if noise is not None:
        ok = (ok and noise.ndim == 4 and noise.shape[0] in (1, n) and noise.shape[1] == 1
              and noise.shape[2:] == x.shape[2:])
    if not ok:
        return reference.style_epilogue(x, noise, strength, bias, scale, shift, alpha=alpha, gain=gain, eps=eps)
    if scale.shape != x.shape[:2] or shift.shape != x.shape[:2]:
        raise ValueError(f"adain: styles {tuple(scale.shape)}, {tuple(shift.shape)} must be [N, C] = "
                         f"{tuple(x.shape[:2])}")
    dt = x.dtype
    noise2 = noise.reshape(noise.shape[0], -1).to(dt).contiguous() if noise is not None else None
    y = _PlaneNorm.apply(_planes(x), noise2, strength.to(dt).contiguous(), bias.to(dt).contiguous(),
                         scale.to(dt).contiguous(), shift.to(dt).contiguous(), prim or _primitives(),
                         (True, float(alpha), float(gain), float(eps)))
    return y.reshape(x.shape)


# -- pixel_norm ------------------------------------------------------------------------------------------------


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
            y = reference.pixel_norm(x, dim=1, eps=ctx.eps)
            return torch.autograd.grad(y, x, dy, create_graph=True)[0], None, None
        return ctx.prim.pixel_norm(x, _like(dy, x), ctx.eps), None, None


def pixel_norm(x: Tensor, *, dim: int = 1, eps: float = 1e-8, prim: Any = None) -> Tensor:
    """:func:`.reference.pixel_norm` on the kernel (any dense layout, e.g. channels-last, without a copy)."""
    if x.ndim == 0 or x.numel() == 0:
        return reference.pixel_norm(x, dim=dim, eps=eps)
    dim = dim % x.ndim
    outer, inner = math.prod(x.shape[:dim]), math.prod(x.shape[dim + 1:])
    try:
        x3 = x.view(outer, x.shape[dim], inner)
    except RuntimeError:  # not expressible as a view: copy
        x3 = x.contiguous().view(outer, x.shape[dim], inner)
    return _PixelNorm.apply(_dense(x3), prim or _primitives(), float(eps)).view(x.shape)


# -- minibatch_stddev ---------------------------------------------------------------------------------------------


class _MbstdStat(Function):
    """The ``[M, F]`` group statistic; the tiling and concatenation around it are plain PyTorch."""

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
            y = x.to(_acc(x.dtype)).reshape(G, x.shape[0] // G, F_, -1)
            var = (y - y.mean(0)).square().mean(0)
            stat = ((var + eps).sqrt() - math.sqrt(eps)).mean(2)
            return torch.autograd.grad(stat, x, dstat, create_graph=True)[0], None, None, None, None
        return ctx.prim.mbstd_bwd(dstat.to(_acc(x.dtype)).contiguous(), x, G, F_, eps), None, None, None, None


def minibatch_stddev(x: Tensor, *, group_size: int = 4, num_channels: int = 1, eps: float = 1e-8,
                     prim: Any = None) -> Tensor:
    """:func:`.reference.minibatch_stddev` with the statistic on the kernel (``x`` made contiguous)."""
    n, c, h, w = x.shape
    if c % num_channels:
        raise ValueError(f"minibatch_stddev: {c} channels do not split into num_channels={num_channels} parts")
    g = stddev_group_size(n, group_size)
    stat = _MbstdStat.apply(x.contiguous(), prim or _primitives(), g, num_channels, float(eps))  # [M, F]
    std = stat.to(x.dtype).reshape(-1, num_channels, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
    return torch.cat([x, std], dim=1)


OPS = {"bias_act": bias_act, "adain": adain, "style_epilogue": style_epilogue, "pixel_norm": pixel_norm,
       "minibatch_stddev": minibatch_stddev, "upfirdn2d": upfirdn2d}


# -- building and loading the extension ------------------------------------------------------------------------


_STATE: dict[str, Any] = {"module": None, "error": None, "warned": False}


def cache_root() -> Path:
    if os.environ.get("GANFORGE_KERNELS_CACHE"):
        return Path(os.environ["GANFORGE_KERNELS_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ganforge" / "kernels"


def cuda_home() -> str | None:
    from torch.utils import cpp_extension

    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or cpp_extension.CUDA_HOME
    return str(home) if home else None


def nvcc_path() -> str | None:
    home = cuda_home()
    if home and (Path(home) / "bin" / "nvcc").is_file():
        return str(Path(home) / "bin" / "nvcc")
    return shutil.which("nvcc")


def nvcc_version() -> str:
    nvcc = nvcc_path()
    if nvcc is None:
        return "none"
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip().splitlines()[-1] if out.strip() else "unknown"


def device_archs() -> str | None:
    """``TORCH_CUDA_ARCH_LIST`` for the visible GPUs (``"9.0"``), or None without one."""
    if not torch.cuda.is_available():
        return None
    caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
    return ";".join(f"{a}.{b}" for a, b in caps)


def toolchain_problem(*, need_device: bool = True) -> str | None:
    """Why the extension cannot be built (or, with ``need_device``, run) here; None when it can."""
    from torch.utils import cpp_extension

    if torch.version.cuda is None:
        return "PyTorch was built without CUDA"
    if need_device:
        if not torch.cuda.is_available():
            return "no CUDA device (torch.cuda.is_available() is False)"
        for i in range(torch.cuda.device_count()):
            cap = torch.cuda.get_device_capability(i)
            if cap < MIN_CAPABILITY:
                return (f"unsupported GPU {torch.cuda.get_device_name(i)} (sm_{cap[0]}{cap[1]}; "
                        f"the kernels need sm_{MIN_CAPABILITY[0]}{MIN_CAPABILITY[1]} or newer)")
    if nvcc_path() is None:
        return f"no nvcc (CUDA_HOME={cuda_home()!r}; set CUDA_HOME to a CUDA toolkit)"
    if not cpp_extension.is_ninja_available():
        return "no ninja (pip install ninja)"
    return None


def build_key(arch: str) -> str:
    """Hash of everything the binary depends on: sources, PyTorch, CUDA and nvcc versions, GPU archs."""
    h = hashlib.sha256()
    for name in (*SOURCES, *HEADERS):
        h.update(name.encode())
        h.update((CSRC / name).read_bytes())
    for part in (torch.__version__, str(torch.version.cuda), nvcc_version(), arch, platform.python_version()):
        h.update(part.encode())
    return h.hexdigest()[:20]


def build(*, arch: str | None = None, verbose: bool = False) -> Any:
    """Build (or load from the cache) the extension and return the module ``load()`` returns.

    ``arch``: ``TORCH_CUDA_ARCH_LIST`` to compile for (default: the visible GPUs), so a machine
    without a GPU can prebuild for one. Raises :class:`KernelsUnavailable` naming the reason.
    """
    from filelock import FileLock
    from torch.utils import cpp_extension

    problem = toolchain_problem(need_device=arch is None)
    if problem:
        raise KernelsUnavailable(problem)
    arch = arch or device_archs()
    key = build_key(str(arch))
    directory = cache_root() / key
    directory.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get("TORCH_CUDA_ARCH_LIST")
    with FileLock(str(cache_root() / f"{key}.lock")):
        os.environ["TORCH_CUDA_ARCH_LIST"] = str(arch)
        try:
            module = cpp_extension.load(
                name=f"ganforge_kernels_{key}", sources=[str(CSRC / s) for s in SOURCES],
                build_directory=str(directory), extra_cflags=["-O3"], extra_cuda_cflags=["-O3"], verbose=verbose)
        except Exception as exc:  # the compiler's last lines name the error
            lines = [line for line in str(exc).splitlines() if line.strip()]
            raise KernelsUnavailable("compile error: " + " | ".join(lines[-12:])) from exc
        finally:
            if saved is None:
                os.environ.pop("TORCH_CUDA_ARCH_LIST", None)
            else:
                os.environ["TORCH_CUDA_ARCH_LIST"] = saved
    return module


def extension() -> Any:
    """The loaded extension (built on first call); raises :class:`KernelsUnavailable`. A failure is
    remembered, so the build is tried once per process."""
    if _STATE["module"] is not None:
        return _STATE["module"]
    if _STATE["error"] is not None:
        raise KernelsUnavailable(_STATE["error"])
    try:
        _STATE["module"] = build()
    except KernelsUnavailable as exc:
        _STATE["error"] = str(exc)
        raise
    return _STATE["module"]


def _primitives() -> Any:
    try:
        return extension()
    except KernelsUnavailable as exc:
        from ganforge import ConfigError

        raise ConfigError(f"GANFORGE_KERNELS: the CUDA kernels are unavailable: {exc}") from exc


def why_not(op: str, x: Tensor) -> str | None:
    """Why the CUDA backend cannot run ``op`` on ``x`` (None: it can). May build the extension."""
    if not x.is_cuda:
        return f"the input is on {x.device.type}, not a CUDA device"
    if x.dtype not in DTYPES:
        return f"dtype {x.dtype} is not one of float16, bfloat16, float32, float64"
    try:
        extension()
    except KernelsUnavailable as exc:
        return str(exc)
    return None


def supports(op: str, x: Tensor) -> bool:
    """For ``GANFORGE_KERNELS=auto`` (CUDA tensors): warns once, naming the reason, when it falls back."""
    reason = why_not(op, x)
    if reason is not None and x.is_cuda and x.dtype in DTYPES and not _STATE["warned"]:
        _STATE["warned"] = True
        warnings.warn(f"ganforge kernels: using the PyTorch reference ops instead of the CUDA kernels: {reason}",
                      KernelFallbackWarning, stacklevel=4)
    return reason is None


def status() -> list[tuple[str, str, str]]:
    """``(op, backend, why)`` for every op under the current ``GANFORGE_KERNELS`` on this machine, for
    CUDA inputs of a supported dtype. Builds nothing."""
    from . import OPS as ALL_OPS
    from . import mode

    m = mode()
    rows = []
    problem = toolchain_problem()
    if m == "ref":
        backend, why = "ref", "GANFORGE_KERNELS=ref"
    elif _STATE["error"]:
        backend, why = "ref" if m == "auto" else "error", _STATE["error"]
    elif _STATE["module"] is not None:
        backend, why = "cuda", "extension loaded"
    elif problem:
        backend, why = "ref" if m == "auto" else "error", problem
    else:
        key = build_key(str(device_archs()))
        built = any((cache_root() / key).glob("*.so"))
        backend = "cuda"
        why = (f"extension built in {cache_root() / key}" if built
               else "extension builds on first use (or: ganforge kernels build)")
    for op in ALL_OPS:
        note = why
        if op == "upfirdn2d" and backend == "cuda":
            note += "; a filter that requires grad uses the reference"
        if op == "bias_act" and backend == "cuda":
            note += "; third-order gradients are not supported"
        rows.append((op, backend, note))
    return rows


def register() -> None:
    from . import register_backend

    register_backend("cuda", dict(OPS), supports=supports, why_not=why_not)
