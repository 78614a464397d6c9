"""The one entry point through which model code calls the hot operations.

One module per op (``bias_act``, ``upfirdn2d``, ``adain``, ``style_epilogue``, ``pixel_norm``,
``minibatch_stddev``) holds its readable PyTorch reference (the specification), its autograd Function
over the CUDA kernel's primitives, its self-test cases and the function exported here, which runs
the backend that ``GANFORGE_KERNELS`` picks (:mod:`.dispatch`):

- ``ref``: always the reference;
- ``auto`` (default): the CUDA kernels for CUDA tensors, for the ops that passed their
  self-verification on this device (:mod:`.verify`), else the reference;
- ``cuda``: the kernels, or an error naming why an op cannot run on them.

Nothing is probed or compiled at import time: the extension is built, loaded and verified on the
first CUDA input (``ganforge kernels build`` / ``verify`` do it ahead), see :mod:`.cuda_backend`.
"""

from __future__ import annotations

from . import reference
from .adain import adain
from .bias_act import ACTIVATIONS, bias_act
from .dispatch import ENV, MODES, OPS, backend_for, kernels_mode, mode, register_backend
from .minibatch_stddev import minibatch_stddev, stddev_group_size
from .pixel_norm import pixel_norm
from .style_epilogue import style_epilogue
from .upfirdn2d import downsample2d, filter2d, filter_size, setup_filter, upfirdn2d, upsample2d

register_backend("ref", {name: getattr(reference, name) for name in OPS})

from . import cuda_backend as _cuda_backend  # noqa: E402  (registers the "cuda" backend)

_cuda_backend.register()

__all__ = [
    "ACTIVATIONS", "ENV", "MODES", "OPS", "adain", "backend_for", "bias_act", "downsample2d", "filter2d",
    "filter_size", "kernels_mode", "minibatch_stddev", "mode", "pixel_norm", "register_backend", "setup_filter",
    "stddev_group_size", "style_epilogue", "upfirdn2d", "upsample2d",
]
