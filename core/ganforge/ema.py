"""Exponential moving averages of a network's weights, used for samples and evaluation."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


class EMA:
    """An exponential moving average of a network's weights.

    Karras et al. 2018 (PGGAN, arXiv:1710.10196, appendix A.1) and 2020 (StyleGAN2): after each
    update of the network, ``w_ema <- beta w_ema + (1 - beta) w`` with ``beta = 0.5 ** (batch / half_life)``
    so that the averaging window is set in images, not steps. The half-life ramps up as
    ``min(half_life, rampup * images_seen)`` so that early averages are not dominated by the random
    initialisation. Buffers (batch-norm statistics, schedule phases) are copied, not averaged.
    """

    def __init__(self, network: nn.Module, half_life: float, rampup: float) -> None:
        self.module = copy.deepcopy(network).eval().requires_grad_(False)
        self.half_life = half_life
        self.rampup = rampup
        self._src: list[Tensor] = list(network.parameters())
        self._dst: list[Tensor] = list(self.module.parameters())
        self._src_buffers: list[Tensor] = list(network.buffers())
        self._dst_buffers: list[Tensor] = list(self.module.buffers())

    @torch.no_grad()
    def update(self, batch_size: int, images_seen: int) -> None:
        half_life = self.half_life
        if self.rampup > 0:
            half_life = min(half_life, images_seen * self.rampup)
        beta = 0.5 ** (batch_size / max(half_life, 1e-8))
        torch._foreach_lerp_(self._dst, self._src, 1.0 - beta)  # one fused kernel, no host sync
        if self._dst_buffers:
            torch._foreach_copy_(self._dst_buffers, self._src_buffers)
