"""Adaptive instance normalisation (Huang & Belongie 2017, arXiv:1703.06868), as StyleGAN's style
block (Karras et al. 2019, arXiv:1812.04948, eq. 1):

    AdaIN(x_i, y) = y_{s,i} (x_i - mu(x_i)) / sigma(x_i) + y_{b,i}

for every channel ``i``, with ``mu`` and ``sigma`` over the pixels of each sample and the style
``y = (y_s, y_b) = A(w)`` a learned affine map of the intermediate latent (equalised learning rate,
``y_s`` initialised to 1 and ``y_b`` to 0). Called as ``layer(x, w)``; computed by
:func:`ganforge_plugins.ops.adain`.
"""

from __future__ import annotations

import attrs
import torch
from ganforge import ConfigError, LayerChoice, hookimpl
from torch import Tensor, nn

from ganforge_plugins import ops
from ganforge_plugins.layers.equalized import EqualizedLinear


class AdaIN(nn.Module):
    """``AdaIN(x_i, y) = y_s,i (x_i - mu(x_i)) / sigma(x_i) + y_b,i`` (eq. 1) with the style ``y``
    a learned affine transform of ``w`` (``y_s`` initialised to 1, ``y_b`` to 0)."""

    def __init__(self, channels: int, w_dim: int) -> None:
        super().__init__()
        self.channels = channels
        self.affine = EqualizedLinear(w_dim, 2 * channels, gain=1.0)  # A in figure 1b
        with torch.no_grad():
            self.affine.bias[:channels].fill_(1.0)

    def styles(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """``(y_s, y_b)``, each ``[N, C]``."""
        style = self.affine(w)
        return style[:, : self.channels], style[:, self.channels :]

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return ops.adain(x, *self.styles(w))


@attrs.frozen(kw_only=True)
class AdaINConfig:
    pass


def adain(config: AdaINConfig, *, channels: int, w_dim: int | None = None, **context: object) -> nn.Module:
    """StyleGAN's AdaIN: y_s (x - mu(x)) / sigma(x) + y_b with (y_s, y_b) = A(w)."""
    if w_dim is None:
        raise ConfigError("adain is a style block: it needs a network that gives it a style (w_dim)")
    return AdaIN(channels, w_dim)


def adain_choice() -> LayerChoice:
    return LayerChoice(name="adain", params=AdaINConfig(), factory=adain)


@hookimpl
def ganforge_register_layers(register):
    register("adain", adain, AdaINConfig)
