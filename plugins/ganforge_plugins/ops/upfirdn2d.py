"""``upfirdn2d``: upsample, FIR-filter, downsample (Karras et al. 2020, arXiv:2006.06676, NVlabs
``torch_utils/ops/upfirdn2d``), with ``setup_filter`` and the resampling helpers ``upsample2d``,
``downsample2d`` and ``filter2d``, whose padding arithmetic lives here once.

Kernel: ``csrc/upfirdn2d.cu``, one thread per output pixel, taps that hit inserted zeros skipped, any
input strides (channels-last in, channels-last out). The gradient of FIR resampling is FIR resampling
with the filter flipped and up / down swapped, computed by the same Function, so every order of
derivative runs on the kernel (R1 through a blurred discriminator). A filter that requires grad
runs the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import Function

from .common import acc_dtype
from .dispatch import backend_for
from .verify import Case, KernelOp

# -- arguments -------------------------------------------------------------------------------------------


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


def _factors(up: int | Sequence[int], down: int | Sequence[int]) -> tuple[tuple[int, int], tuple[int, int]]:
    ups, downs = _pair(up), _pair(down)
    if min(*ups, *downs) < 1:
        raise ValueError(f"upfirdn2d: up and down must be >= 1 (got up={up}, down={down})")
    return ups, downs


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


# -- the reference ---------------------------------------------------------------------------------------


def reference(
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
    (upx, upy), (downx, downy) = _factors(up, down)
    px0, px1, py0, py1 = _padding(padding)
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


# -- the resampling helpers: paddings that keep the image centred, then upfirdn2d ----------------------------

Upfirdn2d = Callable[..., Tensor]


def upsample2d(x: Tensor, f: Tensor | None, *, up: int = 2, padding: int | Sequence[int] = 0,
               flip_filter: bool = False, gain: float = 1.0, impl: Upfirdn2d | None = None) -> Tensor:
    """Upsample by ``up`` with FIR filter ``f``, keeping the image centred: ``[H, W] -> [H*up, W*up]``.

    With ``f = setup_filter([1, 2, 1])`` and ``up = 2`` this is bilinear interpolation (StyleGAN's
    "bilinear up"). The filter is scaled by ``up**2`` to keep the mean of the signal. ``impl``: the
    ``upfirdn2d`` to call (default: the dispatching one).
    """
    upx, upy = _pair(up)
    px0, px1, py0, py1 = _padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return (impl or upfirdn2d)(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x: Tensor, f: Tensor | None, *, down: int = 2, padding: int | Sequence[int] = 0,
                 flip_filter: bool = False, gain: float = 1.0, impl: Upfirdn2d | None = None) -> Tensor:
    """Low-pass filter with ``f`` and downsample by ``down``: ``[H, W] -> [H/down, W/down]``."""
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return (impl or upfirdn2d)(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain)


def filter2d(x: Tensor, f: Tensor | None, *, padding: int | Sequence[int] = 0, flip_filter: bool = False,
             gain: float = 1.0, impl: Upfirdn2d | None = None) -> Tensor:
    """Filter with ``f`` at the same resolution (a blur for a low-pass ``f``)."""
    px0, px1, py0, py1 = _padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return (impl or upfirdn2d)(x, f, padding=p, flip_filter=flip_filter, gain=gain)


# -- the primitive in plain PyTorch: the contract of csrc/upfirdn2d.cu ------------------------------------------


class Primitives:
    @staticmethod
    def upfirdn2d(x: Tensor, f: Tensor, upx: int, upy: int, downx: int, downy: int, px0: int, px1: int, py0: int,
                  py1: int, flip: bool) -> Tensor:
        """``f``: 2-D, gain applied, in the accumulation dtype."""
        with torch.no_grad():
            y = reference(x.to(acc_dtype(x.dtype)), f, up=(upx, upy), down=(downx, downy),
                          padding=(px0, px1, py0, py1), flip_filter=flip)
        return y.to(x.dtype)


# -- autograd over the primitives ---------------------------------------------------------------------------------


def _kernel_filter(f: Tensor | None, x: Tensor, gain: float) -> Tensor:
    """The kernel's filter: 2-D (a separable 1-D filter becomes its outer product), gain applied, in
    float64 for float64 inputs and float32 otherwise."""
    dtype = acc_dtype(x.dtype)
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


def kernel(x: Tensor, f: Tensor | None, *, up: Any = 1, down: Any = 1, padding: Any = 0, flip_filter: bool = False,
           gain: float = 1.0, prim: Any) -> Tensor:
    """:func:`reference` on the primitives ``prim``. A filter that requires grad runs the reference."""
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d: expected [N, C, H, W], got shape {tuple(x.shape)}")
    if f is not None and f.requires_grad:
        return reference(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    ups, downs = _factors(up, down)
    return _UpFirDn2d.apply(x, _kernel_filter(f, x, gain), prim, ups, downs, _padding(padding), bool(flip_filter))


def upfirdn2d(x: Tensor, f: Tensor | None, *, up: Any = 1, down: Any = 1, padding: Any = 0,
              flip_filter: bool = False, gain: float = 1.0) -> Tensor:
    """:func:`reference`, run by the backend ``GANFORGE_KERNELS`` picks for ``x``."""
    return backend_for("upfirdn2d", x).ops["upfirdn2d"](x, f, up=up, down=down, padding=padding,
                                                        flip_filter=flip_filter, gain=gain)


# -- self-verification ----------------------------------------------------------------------------------------


def cases() -> list[Case]:
    """Up and down by 1, 2 and 4 (and mixed per axis), symmetric, asymmetric and negative paddings,
    2-D, separable and flipped filters, a 1x1 image, odd sizes, batch 1, three layouts."""
    g = torch.Generator().manual_seed(20)

    def r(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    f121 = setup_filter([1, 2, 1]).double()
    f1331 = setup_filter([1, 3, 3, 1]).double()
    f8 = setup_filter([1, 3, 5, 7, 7, 5, 3, 1]).double()  # separable (8 taps)
    skew = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)  # asymmetric, 2x3
    specs: list[tuple[str, tuple[int, ...], Tensor, dict[str, Any], str]] = [
        ("1x1 image up 2", (1, 1, 1, 1), f1331, {"up": 2, "padding": (2, 1, 2, 1)}, "contiguous"),
        ("filter only", (2, 7, 13, 11), f121, {"padding": 1}, "channels-last"),
        ("up 2", (2, 3, 5, 7), f1331, {"up": 2, "padding": (2, 1, 2, 1), "gain": 4.0}, "strided"),
        ("down 2", (2, 7, 13, 11), f1331, {"down": 2, "padding": (1, 1, 1, 1)}, "channels-last"),
        ("up 4", (1, 3, 3, 4), f8, {"up": 4, "padding": (5, 4, 6, 3), "gain": 16.0}, "contiguous"),
        ("down 4", (2, 5, 16, 9), f8, {"down": 4, "padding": (3, 2, 4, 3)}, "strided"),
        ("up 2 x, down 2 y", (1, 3, 8, 5), skew, {"up": (2, 1), "down": (1, 2), "padding": (0, 2, 1, 3)},
         "channels-last"),
        ("negative padding", (2, 3, 9, 8), skew, {"padding": (-1, 0, -2, 1), "flip_filter": True}, "contiguous"),
        ("no filter, down 2", (2, 5, 6, 6), None, {"down": 2}, "channels-last"),  # type: ignore[list-item]
    ]
    return [Case(label, (r(*shape) * 2, f), kw, layout, keep=(1,)) for label, shape, f, kw, layout in specs]


OP = KernelOp("upfirdn2d", reference, kernel, cases, double=True)
