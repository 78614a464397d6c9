"""Self-verification: a kernel is used only once it has agreed with its reference on this device.

Every op module declares a :class:`KernelOp`: its reference (the specification), its kernel (the
autograd Function over the *primitives*: the compiled extension, or :class:`RefPrimitives` in plain
PyTorch) and its :class:`Case` list, small inputs that reach the kernels' edge cases (1x1 and odd
sizes, batch 1, channel counts off the vector width, channels-last and non-dense inputs, the up/down
factors and paddings the op takes). :func:`verify` runs, for every case and dtype:

- **forward**: the kernel on the inputs rounded to the dtype, against the reference in float64 on the
  same rounded values, so that the only difference is the kernel's arithmetic;
- **backward**: the gradients of ``<y^2, w>`` with respect to every differentiable input;
- **double backward** (ops that sit in a discriminator, where R1 and WGAN-GP differentiate the
  gradient): the gradient of ``<g, v>`` with respect to the inputs, ``g`` the backward's result.

An error is measured as ``max |got - want| / max(1, max |want|)`` against a tolerance per dtype and
pass (:data:`TOLERANCE`, :data:`SLACK`). The first failing case disables its op, and the verdict says
which case, dtype and pass failed and by how much, so that a user can tell a wrong kernel from a loose
tolerance. Nothing here changes process-wide state: inputs come from their own generators, and
autocast is off for the checks.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch
from torch import Tensor

from .common import DTYPES

# max |got - want| / max(1, max |want|) for the forward pass; the reference runs in float64 on the
# same rounded inputs, so these bound the kernel's own rounding (float32 accumulation, one rounding
# of the output to its dtype) with a margin of about ten.
TOLERANCE = {torch.float64: 1e-9, torch.float32: 2e-5, torch.bfloat16: 4e-2, torch.float16: 5e-3}
# The backward passes add the rounding of the incoming gradient to the dtype.
SLACK = {"forward": 1.0, "backward": 2.0, "double backward": 4.0}
PASSES = tuple(SLACK)


@attrs.frozen
class Case:
    """One self-test input: float64 CPU values, cast to each dtype and put in ``layout`` by the driver.

    ``inputs`` are positional (``None`` stands for an absent optional tensor); ``grad`` lists the
    positions to differentiate; ``keep`` the positions that keep float64 (a filter the kernel casts
    itself); ``layout`` applies to the first input: ``contiguous``, ``channels-last`` or ``strided``
    (every other column of a wider tensor whose other columns are NaN, so that a kernel that ignores
    the strides reads NaN).
    """

    label: str
    inputs: tuple[Tensor | None, ...]
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    layout: str = "contiguous"
    grad: tuple[int, ...] = (0,)
    keep: tuple[int, ...] = ()


@attrs.frozen
class KernelOp:
    """An op as the verification sees it: ``kernel(*inputs, prim=..., **kwargs)`` must equal
    ``reference(*inputs, **kwargs)``; ``double`` whether its double backward is checked."""

    name: str
    reference: Callable[..., Tensor]
    kernel: Callable[..., Tensor]
    cases: Callable[[], list[Case]]
    double: bool = False


@attrs.frozen
class Verdict:
    """The outcome for one op: ``ok`` with the number of checks that passed, or the first failure."""

    op: str
    ok: bool
    checks: int
    seconds: float
    failure: str | None = None


class Mismatch(AssertionError):
    pass


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _layout(x: Tensor, layout: str) -> Tensor:
    if layout == "channels-last":
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        return torch.stack([x, torch.full_like(x, math.nan)], dim=-1)[..., 0]
    if layout != "contiguous":
        raise ValueError(f"Case.layout={layout!r}: expected contiguous, channels-last or strided")
    return x.contiguous()


def _error(got: Tensor | None, want: Tensor | None) -> float:
    if want is None or got is None:
        return 0.0 if (want is None or not want.any()) and (got is None or not got.any()) else math.inf
    if got.shape != want.shape:
        raise Mismatch(f"shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    diff = (got.double() - want).abs()
    if not torch.isfinite(diff).all():
        return math.inf
    return float(diff.max()) / max(1.0, float(want.abs().max())) if diff.numel() else 0.0


def _compare(what: str, got: Sequence[Tensor | None], want: Sequence[Tensor | None], tol: float,
             names: Sequence[str]) -> None:
    for g, w, name in zip(got, want, names, strict=True):
        err = _error(g, w)
        if not err <= tol:
            raise Mismatch(f"{what}: error {err:.3g} > tolerance {tol:.3g} ({name})")


def _inputs(case: Case, dtype: torch.dtype, device: torch.device) -> list[Tensor | None]:
    out: list[Tensor | None] = []
    for i, t in enumerate(case.inputs):
        if t is None:
            out.append(None)
            continue
        t = t.to(device=device, dtype=torch.float64 if i in case.keep else dtype)
        out.append(_layout(t, case.layout) if i == 0 and t.ndim == 4 else t)
    return out


def _passes(op: KernelOp, case: Case, inputs: list[Tensor | None], fn: Callable[..., Tensor],
            seed: int, dtype: torch.dtype) -> dict[str, list[Tensor | None]]:
    """Forward, backward and (for ``op.double``) double-backward results of ``fn`` on ``inputs``. The
    random weights of the objectives are rounded to the tested ``dtype`` for both sides alike."""
    leaves = [t.detach().requires_grad_(i in case.grad) if t is not None else None for i, t in enumerate(inputs)]
    wanted = [t for i, t in enumerate(leaves) if i in case.grad and t is not None]
    y = fn(*leaves, **case.kwargs)
    g = torch.Generator(device="cpu").manual_seed(seed)
    w = torch.randn(y.shape, generator=g, dtype=torch.float64).to(dtype).to(device=y.device, dtype=y.dtype)
    out: dict[str, list[Tensor | None]] = {"forward": [y.detach()]}
    grads = torch.autograd.grad((y.square() * w).sum(), wanted, create_graph=op.double, allow_unused=True)
    out["backward"] = [None if d is None else d.detach() for d in grads]
    if op.double:
        vs = [torch.randn(t.shape, generator=g, dtype=torch.float64).to(dtype).to(device=t.device, dtype=t.dtype)
              for t in wanted]
        total = sum(((d * v).sum() for d, v in zip(grads, vs, strict=True) if d is not None and d.requires_grad),
                    torch.zeros((), device=y.device, dtype=y.dtype))
        if total.requires_grad:
            second = torch.autograd.grad(total, wanted, allow_unused=True)
            out["double backward"] = [None if d is None else d.detach() for d in second]
        else:
            out["double backward"] = [None] * len(wanted)
    return out


def check_case(op: KernelOp, case: Case, prim: Any, dtype: torch.dtype, device: torch.device, seed: int) -> int:
    """Run one case in one dtype; raises :class:`Mismatch` naming the pass; returns the checks made."""
    inputs = _inputs(case, dtype, device)
    got = _passes(op, case, inputs, lambda *a, **k: op.kernel(*a, prim=prim, **k), seed, dtype)
    exact = [None if t is None else t.detach().double() for t in inputs]
    want = _passes(op, case, exact, op.reference, seed, dtype)
    y = got["forward"][0]
    if y is not None and y.dtype != dtype:
        raise Mismatch(f"forward: output dtype {dtype_name(y.dtype)}, expected {dtype_name(dtype)}")
    grads = [f"gradient of argument {i + 1}" for i in sorted(case.grad) if inputs[i] is not None]
    for name in got:
        _compare(name, got[name], [None if t is None else t.double() for t in want[name]],
                 TOLERANCE[dtype] * SLACK[name], ["output"] if name == "forward" else grads)
    return len(got)


def verify(ops: Sequence[KernelOp], prim: Any, device: torch.device | str,
           dtypes: Sequence[torch.dtype] = DTYPES) -> dict[str, Verdict]:
    """Every op's cases in every dtype on ``device`` with primitives ``prim``; one :class:`Verdict` per op."""
    device = torch.device(device)
    verdicts = {}
    on_device = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with on_device, torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
        for op in ops:
            t0, checks, failure = time.perf_counter(), 0, None
            try:
                for i, case in enumerate(op.cases()):
                    for dtype in dtypes:
                        where = f"case {case.label!r} [{case.layout}] in {dtype_name(dtype)}"
                        try:
                            checks += check_case(op, case, prim, dtype, device, seed=i)
                        except Mismatch as exc:
                            raise Mismatch(f"{where}, {exc}") from None
                        except Exception as exc:  # a kernel that raises fails its case, with its message
                            message = " ".join(str(exc).split())[:300]
                            raise Mismatch(f"{where}: {type(exc).__name__}: {message}") from None
            except Mismatch as exc:
                failure = str(exc)
            verdicts[op.name] = Verdict(op=op.name, ok=failure is None, checks=checks,
                                        seconds=round(time.perf_counter() - t0, 3), failure=failure)
    return verdicts
