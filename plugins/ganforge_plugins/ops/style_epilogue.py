"""``style_epilogue``: StyleGAN's layer epilogue (Karras et al. 2019, arXiv:1812.04948, figure 1b):
noise injection with per-channel strength, bias, leaky ReLU, AdaIN:
``adain(lrelu(x + strength * noise + bias) * gain, scale, shift)``.

Kernel: the plane norm of :mod:`.adain` with its ``style`` flag, so that the four steps take one pass
forward and one backward (plus per-plane sums for the bias and strength gradients).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .adain import PlaneNorm, planes
from .adain import reference as adain_reference
from .bias_act import reference as bias_act_reference
from .dispatch import backend_for
from .verify import Case, KernelOp


def reference(x: Tensor, noise: Tensor | None, strength: Tensor, bias: Tensor, scale: Tensor, shift: Tensor, *,
              alpha: float = 0.2, gain: float = 1.0, eps: float = 1e-8) -> Tensor:
    """``adain(lrelu(x + strength * noise + bias, alpha) * gain, scale, shift)``.

    Args:
        x: ``[N, C, H, W]``; noise: ``[N or 1, 1, H, W]`` or ``None``; strength, bias: ``[C]``;
        scale, shift: ``[N, C]``.
    """
    if noise is not None:
        x = x + noise * strength.reshape(1, -1, 1, 1)
    x = bias_act_reference(x, bias, act="lrelu", alpha=alpha, gain=gain)
    return adain_reference(x, scale, shift, eps=eps)


def kernel(x: Tensor, noise: Tensor | None, strength: Tensor, bias: Tensor, scale: Tensor, shift: Tensor, *,
           alpha: float = 0.2, gain: float = 1.0, eps: float = 1e-8, prim: Any) -> Tensor:
    """:func:`reference` on the primitives ``prim``. ``noise`` of another shape than ``[N or 1, 1, H, W]``
    runs the reference."""
    n, c = x.shape[:2]
    ok = x.ndim == 4 and strength.shape == (c,) and bias.shape == (c,) and x[0, 0].numel() > 0
    if noise is not None:
        ok = (ok and noise.ndim == 4 and noise.shape[0] in (1, n) and noise.shape[1] == 1
              and noise.shape[2:] == x.shape[2:])
    if not ok:
        return reference(x, noise, strength, bias, scale, shift, alpha=alpha, gain=gain, eps=eps)
    if scale.shape != x.shape[:2] or shift.shape != x.shape[:2]:
        raise ValueError(f"adain: styles {tuple(scale.shape)}, {tuple(shift.shape)} must be [N, C] = "
                         f"{tuple(x.shape[:2])}")
    dt = x.dtype
    noise2 = noise.reshape(noise.shape[0], -1).to(dt).contiguous() if noise is not None else None
    y = PlaneNorm.apply(planes(x), noise2, strength.to(dt).contiguous(), bias.to(dt).contiguous(),
                        scale.to(dt).contiguous(), shift.to(dt).contiguous(), prim,
                        (True, float(alpha), float(gain), float(eps)))
    return y.reshape(x.shape)


def style_epilogue(x: Tensor, noise: Tensor | None, strength: Tensor, bias: Tensor, scale: Tensor, shift: Tensor, *,
                   alpha: float = 0.2, gain: float = 1.0, eps: float = 1e-8) -> Tensor:
    """:func:`reference`, run by the backend ``GANFORGE_KERNELS`` picks for ``x``."""
    return backend_for("style_epilogue", x).ops["style_epilogue"](x, noise, strength, bias, scale, shift,
                                                                  alpha=alpha, gain=gain, eps=eps)


def cases() -> list[Case]:
    """Noise per sample, shared by the batch and absent; 1x1 and odd planes, batch 1, 7 channels,
    StyleGAN's slope and gain and another pair, three layouts."""
    g = torch.Generator().manual_seed(40)

    def r(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    out = []
    for shape, noise_batch, layout, kw in [
        ((2, 3, 1, 1), 2, "contiguous", {}),
        ((1, 5, 4, 4), 1, "channels-last", {"gain": 2 ** 0.5}),
        ((2, 7, 13, 11), 1, "strided", {"alpha": 0.3, "gain": 1.5}),
        ((3, 7, 6, 5), 3, "channels-last", {}),
        ((2, 4, 5, 5), None, "contiguous", {}),
    ]:
        n, c, h, w = shape
        noise = None if noise_batch is None else r(noise_batch, 1, h, w)
        grads = (0, 2, 3, 4, 5) + (() if noise is None else (1,))
        out.append(Case(f"{'x'.join(map(str, shape))} noise {'none' if noise is None else f'[{noise_batch},1,H,W]'}",
                        (r(*shape) * 2, noise, r(c), r(c), r(n, c), r(n, c)), kw, layout, grad=grads))
    return out


OP = KernelOp("style_epilogue", reference, kernel, cases)
