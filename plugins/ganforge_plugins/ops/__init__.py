"""The one entry point through which model code calls the hot operations.

Every op has a readable PyTorch reference in :mod:`.reference` (the specification). A faster
backend (the CUDA kernels of the kernels issue) registers itself with :func:`register_backend` and
is then picked per call, so models need no change when it lands. ``GANFORGE_KERNELS`` selects:

- ``ref``: always the reference;
- ``auto`` (default): a registered backend for tensors it supports, else the reference;
- ``cuda``: the ``cuda`` backend, an error where it is not registered.

Nothing is probed or compiled at import time: :mod:`.cuda_backend` registers the ``cuda`` backend
here, and its extension is built on the first CUDA input (``ganforge kernels build`` prebuilds it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from torch import Tensor

from . import reference
from .reference import ACTIVATIONS, filter_size, setup_filter, stddev_group_size

__all__ = [
    "ACTIVATIONS",
    "OPS",
    "adain",
    "backend_for",
    "bias_act",
    "downsample2d",
    "filter2d",
    "filter_size",
    "minibatch_stddev",
    "pixel_norm",
    "register_backend",
    "setup_filter",
    "stddev_group_size",
    "style_epilogue",
    "upfirdn2d",
    "upsample2d",
]

ENV = "GANFORGE_KERNELS"
MODES = ("auto", "cuda", "ref")
OPS = ("bias_act", "adain", "style_epilogue", "pixel_norm", "minibatch_stddev", "upfirdn2d")


class Backend:
    """A set of op implementations: ``ops`` maps an op name to a function with the reference's
    signature; ``supports(op, x)`` says whether it handles that input (device, dtype)."""

    def __init__(self, name: str, ops: dict[str, Callable[..., Tensor]],
                 supports: Callable[[str, Tensor], bool] = lambda op, x: True,
                 why_not: Callable[[str, Tensor], str | None] | None = None) -> None:
        self.name = name
        self.ops = ops
        self.supports = supports
        self.why_not = why_not or (lambda op, x: None if supports(op, x) else "unsupported input")


_BACKENDS: dict[str, Backend] = {"ref": Backend("ref", {op: getattr(reference, op) for op in OPS})}


def register_backend(name: str, ops: dict[str, Callable[..., Tensor]],
                     supports: Callable[[str, Tensor], bool] = lambda op, x: True,
                     why_not: Callable[[str, Tensor], str | None] | None = None) -> None:
    """Make ``ops`` (a subset of :data:`OPS`) available under backend ``name`` (``"cuda"``).

    ``supports(op, x)`` decides for ``auto`` (and may warn when it declines); ``why_not(op, x)``
    returns the reason an input cannot run there (None when it can), quoted by ``GANFORGE_KERNELS=cuda``.
    """
    unknown = sorted(set(ops) - set(OPS))
    if unknown:
        raise ValueError(f"register_backend: unknown ops {unknown}; the ops are {', '.join(OPS)}")
    _BACKENDS[name] = Backend(name, dict(ops), supports, why_not)


def mode() -> str:
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        from ganforge import ConfigError

        raise ConfigError(f"{ENV}={value!r}: expected one of {', '.join(MODES)}")
    return value


def backend_for(op: str, x: Tensor) -> Backend:
    """The backend that runs ``op`` on input ``x`` under the current ``GANFORGE_KERNELS``."""
    m = mode()
    if m == "ref":
        return _BACKENDS["ref"]
    cuda = _BACKENDS.get("cuda")
    if m == "cuda":
        reason = None if cuda is None or op not in cuda.ops else cuda.why_not(op, x)
        if cuda is None or op not in cuda.ops or reason is not None:
            from ganforge import ConfigError

            why = f" ({reason})" if reason else ""
            raise ConfigError(f"{ENV}=cuda: no CUDA implementation of {op!r} is available{why}; use auto or ref")
        return cuda
    if cuda is not None and op in cuda.ops and x.is_cuda and cuda.supports(op, x):
        return cuda
    return _BACKENDS["ref"]


def _call(op: str, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    return backend_for(op, x).ops[op](x, *args, **kwargs)


def bias_act(x: Tensor, b: Tensor | None = None, *, dim: int = 1, act: str = "linear", alpha: float | None = None,
             gain: float | None = None, clamp: float | None = None) -> Tensor:
    """See :func:`.reference.bias_act`."""
    return _call("bias_act", x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)


def adain(x: Tensor, scale: Tensor, bias: Tensor, *, eps: float = 1e-8) -> Tensor:
    """See :func:`.reference.adain`."""
    return _call("adain", x, scale, bias, eps=eps)


def style_epilogue(x: Tensor, noise: Tensor | None, strength: Tensor, bias: Tensor, scale: Tensor, shift: Tensor, *,
                   alpha: float = 0.2, gain: float = 1.0, eps: float = 1e-8) -> Tensor:
    """See :func:`.reference.style_epilogue`."""
    return _call("style_epilogue", x, noise, strength, bias, scale, shift, alpha=alpha, gain=gain, eps=eps)


def pixel_norm(x: Tensor, *, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """See :func:`.reference.pixel_norm`."""
    return _call("pixel_norm", x, dim=dim, eps=eps)


def minibatch_stddev(x: Tensor, *, group_size: int = 4, num_channels: int = 1, eps: float = 1e-8) -> Tensor:
    """See :func:`.reference.minibatch_stddev`."""
    return _call("minibatch_stddev", x, group_size=group_size, num_channels=num_channels, eps=eps)


def upfirdn2d(x: Tensor, f: Tensor | None, *, up: Any = 1, down: Any = 1, padding: Any = 0,
              flip_filter: bool = False, gain: float = 1.0) -> Tensor:
    """See :func:`.reference.upfirdn2d`."""
    return _call("upfirdn2d", x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)


# The resampling helpers only compute paddings and call upfirdn2d, so they dispatch through it.


def upsample2d(x: Tensor, f: Tensor | None, *, up: int = 2, padding: Any = 0, flip_filter: bool = False,
               gain: float = 1.0) -> Tensor:
    """See :func:`.reference.upsample2d`."""
    upx, upy = reference._pair(up)
    px0, px1, py0, py1 = reference._padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x: Tensor, f: Tensor | None, *, down: int = 2, padding: Any = 0, flip_filter: bool = False,
                 gain: float = 1.0) -> Tensor:
    """See :func:`.reference.downsample2d`."""
    downx, downy = reference._pair(down)
    px0, px1, py0, py1 = reference._padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain)


def filter2d(x: Tensor, f: Tensor | None, *, padding: Any = 0, flip_filter: bool = False, gain: float = 1.0) -> Tensor:
    """See :func:`.reference.filter2d`."""
    px0, px1, py0, py1 = reference._padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain)


# The fused CUDA kernels (built lazily on the first CUDA input; see cuda_backend.py).
from . import cuda_backend as _cuda_backend  # noqa: E402

_cuda_backend.register()
