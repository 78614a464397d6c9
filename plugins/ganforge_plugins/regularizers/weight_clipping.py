"""WGAN weight clipping: Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN" (arXiv:1701.07875),
Algorithm 1, line 7: ``w <- clip(w, -c, c)`` after every critic update, ``c = 0.01``.

Confining the critic's parameters to a compact set makes the critic family K-Lipschitz for some K,
which is all the Wasserstein estimate needs up to scale. As in the paper's code, every parameter of
the critic is clipped, batch-norm scales and biases included. The paper pairs it with RMSprop
(lr = 5e-5) and ``n_critic = 5``: configs/wgan.toml. The paper itself calls clipping "a clearly
terrible way to enforce a Lipschitz constraint"; ``wgan-gp`` is the usual replacement.
"""

from __future__ import annotations

from typing import Literal

import attrs
import torch
from attrs import validators as v
from ganforge import hookimpl
from torch import nn


@torch.no_grad()
def clip_weights(network: nn.Module, c: float) -> None:
    """Clamp every parameter of ``network`` into ``[-c, c]`` in place."""
    for p in network.parameters():
        p.clamp_(-c, c)


@attrs.frozen(kw_only=True)
class WeightClippingConfig:
    clip: float = attrs.field(default=0.01, validator=v.gt(0.0))  # c = 0.01 (Algorithm 1)


class WeightClipping:
    """WGAN weight clipping: every critic parameter into [-c, c] after each critic step, c = 0.01."""

    target: Literal["discriminator"] = "discriminator"
    needs_labels = False

    def __init__(self, config: WeightClippingConfig) -> None:
        self.config = config

    def constrain(self, network: nn.Module) -> None:
        clip_weights(network, self.config.clip)


@hookimpl
def ganforge_register_regularizers(register):
    register("weight-clipping", WeightClipping, WeightClippingConfig)
