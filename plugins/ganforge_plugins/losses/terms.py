"""Non-adversarial loss terms that procedures weigh in by name.

- ``l1``: ``E|a - b|``, the mean absolute difference per pixel, as the papers' code computes it
  (``nn.L1Loss``): pix2pix's reconstruction (Isola et al. 2017, arXiv:1611.07004, eq. 3), CycleGAN's
  cycle consistency ``E|F(G(x)) - x|`` (Zhu et al. 2017, arXiv:1703.10593, eq. 2) and identity
  (section 5.2), StarGAN's reconstruction ``E|x - G(G(x, c), c')|`` (Choi et al. 2018,
  arXiv:1711.09020, eq. 4).
- ``l2``: ``E(a - b)^2``, the squared error (a blurrier reconstruction, for comparison).
- ``smooth-l1``: Huber's loss, quadratic within ``beta`` of the target and linear outside.
- ``cross-entropy``: ``E[-log p(c | x)]`` over ``[N, K]`` logits and ``[N]`` classes: StarGAN's domain
  classification ``L_cls`` (eqs. 2-3) with one domain per image.
- ``bce``: the sum over attributes of binary cross entropies of ``[N, K]`` logits against ``[N, K]``
  targets in ``[0, 1]``, averaged over the batch: StarGAN's ``L_cls`` for multi-attribute domains (CelebA).
"""

from __future__ import annotations

from typing import Literal

import attrs
import torch.nn.functional as F
from attrs import validators as v
from ganforge import hookimpl
from torch import Tensor


def _same_shape(name: str, a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: shapes differ: {tuple(a.shape)} and {tuple(b.shape)}")


def l1(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute difference: ``E |a - b|``."""
    _same_shape("l1", a, b)
    return (a - b).abs().mean()


def l2(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared difference: ``E (a - b)^2``."""
    _same_shape("l2", a, b)
    return (a - b).square().mean()


@attrs.frozen(kw_only=True)
class DistanceConfig:
    pass


@attrs.frozen(kw_only=True)
class SmoothL1Config:
    beta: float = attrs.field(default=0.1, validator=v.gt(0.0))  # where the quadratic part ends


class L1:
    """Mean absolute difference per pixel (pix2pix, CycleGAN, StarGAN)."""

    kind: Literal["distance"] = "distance"

    def __init__(self, config: DistanceConfig) -> None:
        self.config = config

    def __call__(self, prediction: Tensor, target: Tensor) -> Tensor:
        return l1(prediction, target)


class L2:
    """Mean squared difference per pixel."""

    kind: Literal["distance"] = "distance"

    def __init__(self, config: DistanceConfig) -> None:
        self.config = config

    def __call__(self, prediction: Tensor, target: Tensor) -> Tensor:
        return l2(prediction, target)


class SmoothL1:
    """Huber's loss: quadratic within beta of the target, linear beyond."""

    kind: Literal["distance"] = "distance"

    def __init__(self, config: SmoothL1Config) -> None:
        self.beta = config.beta

    def __call__(self, prediction: Tensor, target: Tensor) -> Tensor:
        _same_shape("smooth-l1", prediction, target)
        return F.smooth_l1_loss(prediction, target, beta=self.beta)


@attrs.frozen(kw_only=True)
class ClassificationConfig:
    pass


class CrossEntropy:
    """Domain classification with one domain per image: E[-log p(c | x)] (StarGAN's L_cls)."""

    kind: Literal["classification"] = "classification"

    def __init__(self, config: ClassificationConfig) -> None:
        self.config = config

    def __call__(self, prediction: Tensor, target: Tensor) -> Tensor:
        if target.dim() == 2:  # per-class targets (one-hot or soft): the same cross entropy
            return -(target * F.log_softmax(prediction, dim=1)).sum(1).mean()
        return F.cross_entropy(prediction, target)


class BinaryCrossEntropy:
    """Multi-attribute domain classification: binary cross entropy per attribute, summed (StarGAN on CelebA)."""

    kind: Literal["classification"] = "classification"

    def __init__(self, config: ClassificationConfig) -> None:
        self.config = config

    def __call__(self, prediction: Tensor, target: Tensor) -> Tensor:
        if target.dim() == 1:
            target = F.one_hot(target, prediction.shape[1])
        return F.binary_cross_entropy_with_logits(prediction, target.to(prediction.dtype), reduction="sum") / len(
            prediction)


@hookimpl
def ganforge_register_loss_terms(register):
    register("l1", L1, DistanceConfig)
    register("l2", L2, DistanceConfig)
    register("smooth-l1", SmoothL1, SmoothL1Config)
    register("cross-entropy", CrossEntropy, ClassificationConfig)
    register("bce", BinaryCrossEntropy, ClassificationConfig)
