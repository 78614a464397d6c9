"""The PGGAN drift penalty: Karras et al. 2018, "Progressive Growing of GANs for Improved Quality,
Stability, and Variation" (arXiv:1710.10196), appendix A.1.

With a Wasserstein critic (``wgan`` loss and ``wgan-gp``) nothing anchors the critic's outputs, which
can drift far from zero. PGGAN adds to the critic's loss

    L_drift = eps_drift E_{x ~ p_data}[D(x)^2],   eps_drift = 0.001,

which keeps the outputs near zero without changing the optimum. It uses the real logits of the main
loss term (``ctx.real_logits``, attached to the graph), so it costs no extra forward pass; the mean
runs over every prediction of a PatchGAN map and is taken in float32 under autocast.
"""

from __future__ import annotations

from typing import Literal

import attrs
import torch
from attrs import validators as v
from ganforge import PenaltyContext, hookimpl
from torch import Tensor


def drift_penalty(real_logits: Tensor) -> Tensor:
    """``E[D(x)^2]`` over every prediction, in at least float32."""
    if real_logits.dtype in (torch.float16, torch.bfloat16):
        real_logits = real_logits.float()
    return real_logits.square().mean()


@attrs.frozen(kw_only=True)
class DriftPenaltyConfig:
    epsilon: float = attrs.field(default=0.001, validator=v.ge(0.0))  # eps_drift = 0.001 (appendix A.1)
    every: int = attrs.field(default=1, validator=v.ge(1))


class DriftPenalty:
    """PGGAN drift: eps E[D(x)^2] on real data, eps = 0.001 (Karras et al. 2018, appendix A.1)."""

    target: Literal["discriminator"] = "discriminator"
    needs_labels = False

    def __init__(self, config: DriftPenaltyConfig) -> None:
        self.config = config
        self.every = config.every

    def penalty(self, ctx: PenaltyContext) -> Tensor:
        logits = ctx.real_logits
        if logits is None:  # not given by the caller: score the real batch
            logits = ctx.discriminator(ctx.real) if ctx.labels is None else ctx.discriminator(ctx.real, ctx.labels)
        return self.config.epsilon * drift_penalty(logits)


@hookimpl
def ganforge_register_regularizers(register):
    register("drift", DriftPenalty, DriftPenaltyConfig)
