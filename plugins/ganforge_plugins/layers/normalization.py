"""The usual normalisations, as layers a network's config names (``norm = "instance-norm"``).

- ``batch-norm`` (Ioffe & Szegedy 2015, arXiv:1502.03167): ``y = gamma (x - E_B[x]) / sqrt(Var_B[x] + eps)
  + beta`` with the mean and variance over the batch and the pixels of each channel (running
  averages at evaluation).
- ``instance-norm`` (Ulyanov et al. 2016, arXiv:1607.08022): the same over the pixels of each sample
  and channel; ``affine`` adds ``gamma``, ``beta``.
- ``layer-norm`` (Ba et al. 2016, arXiv:1607.06450): over the channels and pixels of each sample
  (one group of ``nn.GroupNorm``), with a per-channel ``gamma``, ``beta``: the critic normalisation
  WGAN-GP recommends (section 4), since it keeps the samples independent.
- ``none``: ``y = x``.
"""

from __future__ import annotations

import attrs
from attrs import validators as v
from ganforge import LayerChoice, hookimpl
from torch import nn


@attrs.frozen(kw_only=True)
class BatchNormConfig:
    eps: float = attrs.field(default=1e-5, validator=v.gt(0.0))
    momentum: float = attrs.field(default=0.1, validator=[v.gt(0.0), v.le(1.0)])
    affine: bool = True


@attrs.frozen(kw_only=True)
class InstanceNormConfig:
    eps: float = attrs.field(default=1e-5, validator=v.gt(0.0))
    affine: bool = False  # the reference CycleGAN's; StarGAN's uses affine = true
    track_running_stats: bool = False


@attrs.frozen(kw_only=True)
class LayerNormConfig:
    eps: float = attrs.field(default=1e-5, validator=v.gt(0.0))


@attrs.frozen(kw_only=True)
class NoneConfig:
    pass


def batch_norm(config: BatchNormConfig, *, channels: int, **context: object) -> nn.Module:
    """Batch normalisation over the batch and pixels of each channel (Ioffe & Szegedy 2015)."""
    return nn.BatchNorm2d(channels, eps=config.eps, momentum=config.momentum, affine=config.affine)


def instance_norm(config: InstanceNormConfig, *, channels: int, **context: object) -> nn.Module:
    """Instance normalisation over the pixels of each sample and channel (Ulyanov et al. 2016)."""
    return nn.InstanceNorm2d(channels, eps=config.eps, affine=config.affine,
                             track_running_stats=config.track_running_stats)


def layer_norm(config: LayerNormConfig, *, channels: int, **context: object) -> nn.Module:
    """Layer normalisation over the channels and pixels of each sample (Ba et al. 2016)."""
    return nn.GroupNorm(1, channels, eps=config.eps)


def no_norm(config: NoneConfig, *, channels: int, **context: object) -> nn.Module:
    """No normalisation: y = x."""
    return nn.Identity()


def batch_norm_choice() -> LayerChoice:
    return LayerChoice(name="batch-norm", params=BatchNormConfig(), factory=batch_norm)


def instance_norm_choice(**changes: object) -> LayerChoice:
    return LayerChoice(name="instance-norm", params=InstanceNormConfig(**changes), factory=instance_norm)  # type: ignore[arg-type]


def no_layer() -> LayerChoice:
    return LayerChoice(name="none", params=NoneConfig(), factory=no_norm)


@hookimpl
def ganforge_register_layers(register):
    register("batch-norm", batch_norm, BatchNormConfig)
    register("instance-norm", instance_norm, InstanceNormConfig)
    register("layer-norm", layer_norm, LayerNormConfig)
    register("none", no_norm, NoneConfig)
