"""Helpers every kernel op shares: the accumulation dtype and the layouts the kernels accept."""

from __future__ import annotations

import torch
from torch import Tensor

# The dtypes the kernels store; they compute in float32 (float64 for float64).
DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a kernel computes in for inputs of ``dtype``."""
    return torch.float64 if dtype == torch.float64 else torch.float32


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


def dense(x: Tensor) -> Tensor:
    """``x`` itself when it is dense in some dimension order (the kernels walk its storage), else a copy."""
    return x if is_dense(x) else x.contiguous()


def like(t: Tensor, ref: Tensor) -> Tensor:
    """``t`` with ``ref``'s strides and dtype (gradients can arrive in another layout than the input)."""
    if t.stride() == ref.stride() and t.dtype == ref.dtype:
        return t
    return torch.empty_like(ref).copy_(t)


def sum_except(t: Tensor, dim: int) -> Tensor:
    return t.sum(dim=[i for i in range(t.ndim) if i != dim])
