"""``bias_act``: ``clamp(act(x + b, alpha) * gain, -clamp, clamp)``, NVlabs StyleGAN2-ADA semantics.

The bias is broadcast along ``dim``; the activation table is NVlabs' ``torch_utils/ops/bias_act.py``
(``def_gain = sqrt(2)`` for relu / lrelu / swish keeps unit-variance inputs unit-variance). Kernel:
``csrc/bias_act.cu``, elementwise over any dense layout. Gradients: ``dx = dy * f'(x + b)`` is the
kernel's mode 1, a Function whose own gradient is itself (for ``dy``) and mode 2 (``f''``, for ``x``
and ``b``), so R1 through an lrelu discriminator stays on the kernel; third order raises.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import Function

from .common import acc_dtype, dense, like, sum_except
from .dispatch import backend_for
from .verify import Case, KernelOp

# -- the reference ---------------------------------------------------------------------------------


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
ACT_IDS = {name: i for i, name in enumerate(ACTIVATIONS)}  # the order of enum Act in bias_act.cu
LINEAR_PIECEWISE = ("linear", "relu", "lrelu")  # second derivative zero


def _check(x: Tensor, b: Tensor | None, dim: int, act: str) -> None:
    if act not in ACTIVATIONS:
        raise ValueError(f"bias_act: unknown activation {act!r}; choose one of {', '.join(ACTIVATIONS)}")
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[dim]):
        raise ValueError(f"bias_act: bias of shape {tuple(b.shape)} does not match dim {dim} of x {tuple(x.shape)}")


def reference(x: Tensor, b: Tensor | None = None, *, dim: int = 1, act: str = "linear", alpha: float | None = None,
              gain: float | None = None, clamp: float | None = None) -> Tensor:
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
    _check(x, b, dim, act)
    spec = ACTIVATIONS[act]
    alpha = spec.def_alpha if alpha is None else float(alpha)
    gain = spec.def_gain if gain is None else float(gain)
    if b is not None:
        x = x + b.reshape([-1 if i == dim % x.ndim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)  # type: ignore[operator]
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


# -- the primitive in plain PyTorch: the contract of csrc/bias_act.cu --------------------------------------


class Primitives:
    @staticmethod
    def bias_act(x: Tensor, b: Tensor | None, dy: Tensor | None, ddx: Tensor | None, mode: int, dim: int, act: int,
                 alpha: float, gain: float, clamp: float) -> Tensor:
        """mode 0: ``y``; mode 1: ``dy * dy/dx``; mode 2: ``ddx * dy * d2y/dx2`` (zero where clamped)."""
        name = list(ACTIVATIONS)[act]
        z = x.to(acc_dtype(x.dtype))
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


# -- autograd over the primitives -----------------------------------------------------------------------------


class _BiasAct(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, b: Tensor | None, prim: Any, cfg: tuple) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, b)
        ctx.prim, ctx.cfg = prim, cfg
        return prim.bias_act(x, b, None, None, 0, *cfg)

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple:  # type: ignore[override]
        x, b = ctx.saved_tensors
        dx = _BiasActGrad.apply(like(dy, x), x, b, ctx.prim, ctx.cfg)
        db = sum_except(dx, ctx.cfg[0]) if b is not None and ctx.needs_input_grad[1] else None
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
        ddx = like(ddx, x)
        d_dy = _BiasActGrad.apply(ddx, x, b, ctx.prim, ctx.cfg) if ctx.needs_input_grad[0] else None
        d_x = d_b = None
        act = list(ACTIVATIONS)[ctx.cfg[1]]
        if act not in LINEAR_PIECEWISE and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            d_x = _BiasActGrad2.apply(ddx, dy, x, b, ctx.prim, ctx.cfg)
            d_b = sum_except(d_x, ctx.cfg[0]) if b is not None and ctx.needs_input_grad[2] else None
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


def kernel(x: Tensor, b: Tensor | None = None, *, dim: int = 1, act: str = "linear", alpha: float | None = None,
           gain: float | None = None, clamp: float | None = None, prim: Any) -> Tensor:
    """:func:`reference` on the primitives ``prim`` (the extension on the GPU), in place of any dense layout."""
    if x.ndim == 0:
        return reference(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
    dim = dim % x.ndim
    _check(x, b, dim, act)
    spec = ACTIVATIONS[act]
    cfg = (dim, ACT_IDS[act], spec.def_alpha if alpha is None else float(alpha),
           spec.def_gain if gain is None else float(gain), -1.0 if clamp is None or clamp < 0 else float(clamp))
    if b is not None:
        b = b.to(x.dtype).contiguous()
    return _BiasAct.apply(dense(x), b, prim, cfg)


def bias_act(x: Tensor, b: Tensor | None = None, *, dim: int = 1, act: str = "linear", alpha: float | None = None,
             gain: float | None = None, clamp: float | None = None) -> Tensor:
    """:func:`reference`, run by the backend ``GANFORGE_KERNELS`` picks for ``x``."""
    return backend_for("bias_act", x).ops["bias_act"](x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)


# -- self-verification ---------------------------------------------------------------------------------------


def cases() -> list[Case]:
    """Odd and 1x1 sizes, batch 1, 7 channels (off every vector width), three layouts, a bias along a
    last dim, the smooth activations (whose second derivative is a kernel of its own) and a clamp."""
    g = torch.Generator().manual_seed(10)

    def r(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    out = []
    for shape, act, layout in [((1, 1, 1, 1), "lrelu", "contiguous"), ((2, 7, 13, 11), "lrelu", "channels-last"),
                               ((2, 7, 13, 11), "tanh", "strided"), ((3, 5, 4, 4), "swish", "channels-last"),
                               ((2, 3, 5, 3), "softplus", "contiguous"), ((1, 9, 3, 1), "elu", "strided")]:
        x = r(*shape) * 2
        out.append(Case(f"{act} {'x'.join(map(str, shape))}", (x, r(shape[1])), {"act": act}, layout, grad=(0, 1)))
    out.append(Case("lrelu clamp 1.5 2x7x6x5", (r(2, 7, 6, 5) * 2, r(7)), {"act": "lrelu", "clamp": 1.5},
                    "channels-last", grad=(0, 1)))
    out.append(Case("sigmoid gain 0.7 along dim -1 of 5x7", (r(5, 7) * 2, r(7)), {"act": "sigmoid", "dim": -1,
                    "gain": 0.7}, grad=(0, 1)))
    out.append(Case("linear without bias 4x3", (r(4, 3), None), {"act": "linear"}))
    return out


OP = KernelOp("bias_act", reference, kernel, cases, double=True)
