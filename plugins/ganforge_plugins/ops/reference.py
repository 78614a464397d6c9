"""The specification of every hot op, in one place: the readable PyTorch reference of each op module.

Differentiable to any order through autograd, and the oracle the CUDA kernels are verified against
(:mod:`.verify`). Model code does not call these directly; it calls :mod:`ganforge_plugins.ops`,
which dispatches to a backend. Each function is defined, with its paper and formula, in its op's
module: :mod:`.bias_act`, :mod:`.adain`, :mod:`.style_epilogue`, :mod:`.pixel_norm`,
:mod:`.minibatch_stddev`, :mod:`.upfirdn2d`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from .adain import reference as adain
from .bias_act import ACTIVATIONS, Activation
from .bias_act import reference as bias_act
from .minibatch_stddev import reference as minibatch_stddev
from .minibatch_stddev import stddev_group_size
from .pixel_norm import reference as pixel_norm
from .style_epilogue import reference as style_epilogue
from .upfirdn2d import downsample2d as _downsample2d
from .upfirdn2d import filter2d as _filter2d
from .upfirdn2d import filter_size, setup_filter
from .upfirdn2d import reference as upfirdn2d
from .upfirdn2d import upsample2d as _upsample2d


def upsample2d(x: Tensor, f: Tensor | None, *, up: int = 2, padding: int | Sequence[int] = 0, **kw: Any) -> Tensor:
    """:func:`.upfirdn2d.upsample2d` on the reference."""
    return _upsample2d(x, f, up=up, padding=padding, impl=upfirdn2d, **kw)


def downsample2d(x: Tensor, f: Tensor | None, *, down: int = 2, padding: int | Sequence[int] = 0,
                 **kw: Any) -> Tensor:
    """:func:`.upfirdn2d.downsample2d` on the reference."""
    return _downsample2d(x, f, down=down, padding=padding, impl=upfirdn2d, **kw)


def filter2d(x: Tensor, f: Tensor | None, *, padding: int | Sequence[int] = 0, **kw: Any) -> Tensor:
    """:func:`.upfirdn2d.filter2d` on the reference."""
    return _filter2d(x, f, padding=padding, impl=upfirdn2d, **kw)


__all__ = ["ACTIVATIONS", "Activation", "adain", "bias_act", "downsample2d", "filter2d", "filter_size",
           "minibatch_stddev", "pixel_norm", "setup_filter", "stddev_group_size", "style_epilogue", "upfirdn2d",
           "upsample2d"]
