"""Minibatch standard deviation (Karras et al. 2018, PGGAN, arXiv:1710.10196, section 3): for groups
of ``G`` samples, the standard deviation of every feature over the group, averaged over the features
(of ``C / num_channels`` channels each) and pixels, appended as ``num_channels`` constant feature maps:

    s_n = mean_{c,h,w} (sqrt(Var_{g in group(n)}[x_{g,c,h,w}] + eps) - sqrt(eps)),  eps = 1e-8

so that the discriminator sees how varied a batch is and can penalise a collapsed generator (the
``- sqrt(eps)`` makes identical samples score exactly zero). Samples ``n, n + N/G, ...`` form a group,
as NVlabs' reshape does; ``G`` falls back to the largest divisor of the batch at most ``group_size``. Computed by
:func:`ganforge_plugins.ops.minibatch_stddev`; it sits before a discriminator's last block.
"""

from __future__ import annotations

import attrs
from attrs import validators as v
from ganforge import LayerChoice, hookimpl
from torch import Tensor, nn

from ganforge_plugins import ops


@attrs.frozen(kw_only=True)
class MinibatchStdDevConfig:
    group_size: int = attrs.field(default=4, validator=v.ge(1))
    num_channels: int = attrs.field(default=1, validator=v.ge(1))


class MinibatchStdDev(nn.Module):
    """Appends the minibatch standard deviation as ``num_channels`` feature maps (PGGAN section 3);
    groups of ``group_size``, falling back to the largest divisor of the batch."""

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels
        self.extra_channels = num_channels

    def forward(self, x: Tensor) -> Tensor:
        return ops.minibatch_stddev(x, group_size=self.group_size, num_channels=self.num_channels)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


def minibatch_stddev(config: MinibatchStdDevConfig, *, channels: int, **context: object) -> nn.Module:
    """PGGAN's minibatch standard deviation, appended as extra feature maps."""
    if channels % config.num_channels:
        from ganforge import ConfigError

        raise ConfigError(f"minibatch-stddev.num_channels: {config.num_channels} must divide the {channels} "
                          "channels it sees")
    return MinibatchStdDev(config.group_size, config.num_channels)


def minibatch_stddev_choice() -> LayerChoice:
    return LayerChoice(name="minibatch-stddev", params=MinibatchStdDevConfig(), factory=minibatch_stddev)


@hookimpl
def ganforge_register_layers(register):
    register("minibatch-stddev", minibatch_stddev, MinibatchStdDevConfig)
