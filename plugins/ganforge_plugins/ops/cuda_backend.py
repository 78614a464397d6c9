"""The ``cuda`` backend: the fused kernels of every op module, used only where they proved themselves.

Each op module (:mod:`.bias_act`, :mod:`.upfirdn2d`, :mod:`.adain`, :mod:`.style_epilogue`,
:mod:`.pixel_norm`, :mod:`.minibatch_stddev`) holds its reference, its autograd Function over the
*primitives* and its self-test cases. The primitives are the compiled extension on the GPU
(:mod:`.extension`) or :class:`RefPrimitives`, the same contract in plain PyTorch, with which the
wiring (backward and double backward included) and the verification itself are tested on the CPU.

On the first CUDA input the extension is built or loaded from its cache, and then every op is
verified on that device (:mod:`.verify`) unless a trusted verdict is cached beside the build. Under
``GANFORGE_KERNELS=auto`` an op that failed runs the reference, with one
:class:`KernelFallbackWarning` naming the failing case; under ``cuda`` it is a
:class:`ganforge.ConfigError` with the same message. A machine that cannot build or run the
extension (no CUDA device, no nvcc, no ninja, an old GPU, a compile error) uses the reference with
one warning that names the reason.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

# The op modules are imported by name: the package attribute of each name is the op's function.
from . import extension
from .adain import OP as ADAIN
from .adain import Primitives as PlaneNormPrimitives
from .bias_act import OP as BIAS_ACT
from .bias_act import Primitives as BiasActPrimitives
from .common import DTYPES
from .dispatch import mode, mode_from_env, register_backend
from .extension import KernelsUnavailable
from .minibatch_stddev import OP as MINIBATCH_STDDEV
from .minibatch_stddev import Primitives as MinibatchStddevPrimitives
from .pixel_norm import OP as PIXEL_NORM
from .pixel_norm import Primitives as PixelNormPrimitives
from .style_epilogue import OP as STYLE_EPILOGUE
from .upfirdn2d import OP as UPFIRDN2D
from .upfirdn2d import Primitives as Upfirdn2dPrimitives
from .verify import KernelOp, Verdict, verify

KERNEL_OPS: tuple[KernelOp, ...] = (BIAS_ACT, ADAIN, STYLE_EPILOGUE, PIXEL_NORM, MINIBATCH_STDDEV, UPFIRDN2D)
BY_NAME = {op.name: op for op in KERNEL_OPS}


class KernelFallbackWarning(RuntimeWarning):
    """GANFORGE_KERNELS=auto runs the reference for an op because its CUDA kernel cannot be used."""


class RefPrimitives(BiasActPrimitives, Upfirdn2dPrimitives, PlaneNormPrimitives, PixelNormPrimitives,
                    MinibatchStddevPrimitives):
    """Every function of the extension in plain PyTorch (same arguments, same results up to rounding)."""


def _on_the_extension(kernel: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``kernel`` with the primitives defaulting to the loaded extension."""

    def run(*args: Any, prim: Any = None, **kwargs: Any) -> Tensor:
        return kernel(*args, prim=prim or _primitives(), **kwargs)

    run.__name__ = run.__qualname__ = kernel.__module__.rsplit(".", 1)[-1]
    run.__doc__ = kernel.__doc__
    return run


OPS: dict[str, Callable[..., Tensor]] = {op.name: _on_the_extension(op.kernel) for op in KERNEL_OPS}
bias_act, upfirdn2d, adain = OPS["bias_act"], OPS["upfirdn2d"], OPS["adain"]
style_epilogue, pixel_norm, minibatch_stddev = OPS["style_epilogue"], OPS["pixel_norm"], OPS["minibatch_stddev"]


# -- the loaded, verified extension of this process ----------------------------------------------------------

# module: the extension; error: why it is unavailable; verdict: {"device", "date", "ops": {op: {...}}};
# warned: the reasons already warned about (one warning per reason and process).
_STATE: dict[str, Any] = {"module": None, "error": None, "verdict": None, "warned": set()}


def verify_ops(prim: Any, device: torch.device | str, ops: tuple[KernelOp, ...] = KERNEL_OPS) -> dict[str, Verdict]:
    """Run every op's self-test with primitives ``prim`` on ``device`` (see :mod:`.verify`)."""
    return verify(ops, prim, device)


def _record(verdicts: dict[str, Verdict]) -> dict[str, dict[str, Any]]:
    return {name: {"ok": v.ok, "checks": v.checks, "seconds": v.seconds, "failure": v.failure}
            for name, v in verdicts.items()}


def verified(built: extension.Built, *, force: bool = False, device: torch.device | None = None,
             label: str | None = None) -> dict[str, Any]:
    """The verdict of ``built`` on ``device`` (default: the current CUDA device, named ``label``): the
    cached one when it can be trusted (and not ``force``), else a fresh verification, cached beside the build."""
    device = device or torch.device("cuda", torch.cuda.current_device())
    label = label or extension.device_label(device.index)
    entry = None if force else extension.read_verdict(built.key, label, list(BY_NAME))
    if entry is None:
        t0 = time.perf_counter()
        verdicts = verify_ops(built.module, device)
        entry = extension.write_verdict(built.key, label, _record(verdicts), time.perf_counter() - t0)
    return {"device": label, **entry}


@torch.compiler.disable  # the first call may come from inside a compiled model: build and verify eagerly
def load() -> Any:
    """The verified extension (built and verified on first call); raises :class:`KernelsUnavailable`.
    A failure is remembered, so the build is tried once per process."""
    if _STATE["module"] is not None:
        return _STATE["module"]
    if _STATE["error"] is not None:
        raise KernelsUnavailable(_STATE["error"])
    try:
        built = extension.build()
        _STATE["verdict"] = verified(built)
    except KernelsUnavailable as exc:
        _STATE["error"] = str(exc)
        raise
    _STATE["module"] = built.module
    return built.module


def _primitives() -> Any:
    try:
        return load()
    except KernelsUnavailable as exc:
        from ganforge import ConfigError

        raise ConfigError(f"GANFORGE_KERNELS: the CUDA kernels are unavailable: {exc}") from exc


def disabled_reason(op: str, verdict: dict[str, Any]) -> str | None:
    entry = verdict["ops"].get(op)
    if entry is None or entry["ok"]:
        return None
    return f"its CUDA kernel failed self-verification on {verdict['device']}: {entry['failure']}"


def why_not(op: str, x: Tensor) -> str | None:
    """Why the CUDA backend cannot run ``op`` on ``x`` (None: it can). May build and verify the extension."""
    if not x.is_cuda:
        return f"the input is on {x.device.type}, not a CUDA device"
    if x.dtype not in DTYPES:
        return f"dtype {x.dtype} is not one of float16, bfloat16, float32, float64"
    try:
        load()
    except KernelsUnavailable as exc:
        return str(exc)
    return disabled_reason(op, _STATE["verdict"])


def supports(op: str, x: Tensor) -> bool:
    """For ``GANFORGE_KERNELS=auto`` (CUDA tensors): warns once per reason when it falls back."""
    reason = why_not(op, x)
    if reason is not None and x.is_cuda and x.dtype in DTYPES and reason not in _STATE["warned"]:
        _STATE["warned"].add(reason)
        subject = f"{op} uses" if _STATE["module"] is not None else "using"
        warnings.warn(f"ganforge kernels: {subject} the PyTorch reference ops instead of the CUDA kernels: {reason}",
                      KernelFallbackWarning, stacklevel=4)
    return reason is None


# -- status ---------------------------------------------------------------------------------------------------


def status() -> list[tuple[str, str, str, str]]:
    """``(op, state, backend, detail)`` for every op on this machine, for CUDA inputs: state is
    ``verified``, ``disabled``, ``not verified`` (built, verified on first use) or ``not built``;
    backend is what ``GANFORGE_KERNELS`` (read afresh) picks. Builds and verifies nothing."""
    m = mode_from_env()
    verdict = _STATE["verdict"]
    problem = _STATE["error"] or (None if verdict else extension.toolchain_problem())
    pending = None  # why the ops are not verified yet, on a machine that can build and run them
    if verdict is None and problem is None:
        key = extension.build_key(str(extension.device_archs()))
        entry = extension.read_verdict(key, extension.device_label(), list(BY_NAME)) if extension.is_built(key) \
            else None
        if entry is not None:
            verdict = {"device": extension.device_label(), **entry}
        elif extension.is_built(key):
            pending = f"built in {extension.cache_root() / key}; verified on first use (or: ganforge kernels verify)"
        else:
            pending = "builds and verifies on first use (or: ganforge kernels verify)"
    rows = []
    for op in BY_NAME:
        if verdict is not None:
            entry = verdict["ops"][op]
            state = "verified" if entry["ok"] else "disabled"
            detail = (f"on {verdict['device']}, {verdict['date']}" if entry["ok"]
                      else f"on {verdict['device']}: {entry['failure']}")
        else:
            state = "not verified" if pending and pending.startswith("built") else "not built"
            detail = str(pending or problem)
        if m == "ref":
            backend = "ref"
        elif state == "verified":
            backend = "cuda"
        elif pending:
            backend = "cuda if verified"
        else:
            backend = "ref" if m == "auto" else "error"
        rows.append((op, state, backend, detail))
    return rows


def register() -> None:
    register_backend("cuda", OPS, supports=supports, why_not=why_not)


__all__ = ["BY_NAME", "KERNEL_OPS", "OPS", "KernelFallbackWarning", "KernelsUnavailable", "RefPrimitives", "load",
           "mode", "status", "verified", "verify_ops", "why_not"]
