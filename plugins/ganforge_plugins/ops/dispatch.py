"""Which implementation runs an op: the ``GANFORGE_KERNELS`` mode and the registered backends.

- ``ref``: always the reference (the readable PyTorch in each op's module);
- ``auto`` (default): a registered backend for the inputs it supports (CUDA tensors, ops that passed
  their self-verification), else the reference;
- ``cuda``: the ``cuda`` backend, and a :class:`ganforge.ConfigError` naming the reason where it cannot run.

The environment is read once per process, on the first op call (an op is called millions of times;
reading the environment there would be a cost per call, and a mode that changed in the middle of a
run would mix implementations). :func:`kernels_mode` switches it for a block, for tests and for
benchmarks that compare backends in one process; ``ganforge kernels status`` reads the environment
afresh with :func:`mode_from_env`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from torch import Tensor

ENV = "GANFORGE_KERNELS"
MODES = ("auto", "cuda", "ref")
OPS = ("bias_act", "adain", "style_epilogue", "pixel_norm", "minibatch_stddev", "upfirdn2d")


class Backend:
    """A set of op implementations: ``ops`` maps an op name to a function with the reference's
    signature; ``supports(op, x)`` says whether ``auto`` may use it for that input; ``why_not(op, x)``
    gives the reason it cannot (None when it can), quoted by ``GANFORGE_KERNELS=cuda``."""

    def __init__(self, name: str, ops: Mapping[str, Callable[..., Tensor]],
                 supports: Callable[[str, Tensor], bool] = lambda op, x: True,
                 why_not: Callable[[str, Tensor], str | None] | None = None) -> None:
        self.name = name
        self.ops = dict(ops)
        self.supports = supports
        self.why_not = why_not or (lambda op, x: None if supports(op, x) else "unsupported input")


_BACKENDS: dict[str, Backend] = {}
_MODE: list[str] = []  # the mode once read: empty until the first op call


def register_backend(name: str, ops: Mapping[str, Callable[..., Tensor]],
                     supports: Callable[[str, Tensor], bool] = lambda op, x: True,
                     why_not: Callable[[str, Tensor], str | None] | None = None) -> None:
    """Make ``ops`` (a subset of :data:`OPS`) available under backend ``name`` (``"ref"``, ``"cuda"``)."""
    unknown = sorted(set(ops) - set(OPS))
    if unknown:
        raise ValueError(f"register_backend: unknown ops {unknown}; the ops are {', '.join(OPS)}")
    _BACKENDS[name] = Backend(name, ops, supports, why_not)


def parse_mode(value: str | None) -> str:
    """``value`` of ``GANFORGE_KERNELS`` checked (unset or empty: ``auto``; case does not matter)."""
    mode = (value or "auto").strip().lower() or "auto"
    if mode not in MODES:
        from ganforge import ConfigError

        raise ConfigError(f"{ENV}={value!r}: expected one of {', '.join(MODES)}")
    return mode


def mode_from_env() -> str:
    """``GANFORGE_KERNELS`` as the environment says now (for ``ganforge kernels status``)."""
    return parse_mode(os.environ.get(ENV))


def mode() -> str:
    """The mode of this process: ``GANFORGE_KERNELS`` as read on the first call."""
    if not _MODE:
        _MODE.append(mode_from_env())
    return _MODE[0]


@contextmanager
def kernels_mode(value: str) -> Iterator[str]:
    """Run a block under another mode (``"ref"``, ``"auto"``, ``"cuda"``), then restore the previous one."""
    new = parse_mode(value)
    saved = list(_MODE)
    _MODE[:] = [new]
    try:
        yield new
    finally:
        _MODE[:] = saved


def backend_for(op: str, x: Tensor) -> Backend:
    """The backend that runs ``op`` on input ``x`` under this process's mode."""
    m = mode()
    if m == "ref":
        return _BACKENDS["ref"]
    cuda = _BACKENDS.get("cuda")
    if m == "cuda":
        reason = "no CUDA backend is registered" if cuda is None or op not in cuda.ops else cuda.why_not(op, x)
        if reason is not None:
            from ganforge import ConfigError

            raise ConfigError(f"{ENV}=cuda: no CUDA implementation of {op!r} is available ({reason}); "
                              f"use {ENV}=auto or ref")
        return cuda  # type: ignore[return-value]
    if cuda is not None and op in cuda.ops and x.is_cuda and cuda.supports(op, x):
        return cuda
    return _BACKENDS["ref"]
