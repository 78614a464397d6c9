"""Latent vector arithmetic: Radford, Metz & Chintala 2016, "Unsupervised Representation Learning with
Deep Convolutional GANs" (arXiv:1511.06434), section 6.3.2 and figure 7: averaging the ``z`` of
several samples showing a concept gives a stable latent for it, and sums of such means compose
concepts (``"smiling woman" - "neutral woman" + "neutral man" = "smiling man"``).

Here the samples are chosen by scorers instead of by eye: :func:`mean_latent` averages the latents
selected by a mask (e.g. "classified 3 and in the top decile of ink"), :func:`arithmetic` forms
``a - b + c``, and the ``vector-arithmetic`` editor uses ``mean(high) - mean(low)`` of one attribute
(the ``num_keep`` highest and lowest scored of ``num_samples``) as an unnormalised direction, so that
``alpha = 1`` moves a latent by the whole difference of the two group means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch
from attrs import validators as v
from ganforge import AttributeScorer, ConfigError, hookimpl
from torch import Tensor

from ganforge_plugins.latent.editing import (
    alpha_like,
    build_scorer,
    check_latents,
    load_direction,
    parse_attribute,
    save_direction,
    score_latents,
)
from ganforge_plugins.latent.interfacegan import extremes
from ganforge_plugins.latent.spaces import SPACES, check_space, latent_shape, sample_latents


@attrs.frozen(kw_only=True)
class VectorArithmeticConfig:
    space: str = attrs.field(default="z", validator=v.in_(SPACES))
    attribute: str = "ink"  # "scorer" or "scorer:attribute"
    num_samples: int = attrs.field(default=2000, validator=v.ge(2))
    num_keep: int = attrs.field(default=200, validator=v.ge(1))  # size of each group averaged
    batch_size: int = attrs.field(default=256, validator=v.ge(1))
    direction: str = ""

    def __attrs_post_init__(self) -> None:
        if 2 * self.num_keep > self.num_samples:
            raise ValueError(f"'num_keep' must be at most num_samples / 2 = {self.num_samples // 2} "
                             f"(got {self.num_keep})")


def mean_latent(latents: Tensor, mask: Tensor, *, what: str = "group") -> Tensor:
    """Mean of the latents ``[N, *S]`` where ``mask`` ``[N]`` is true (ConfigError when none is)."""
    if mask.shape != latents.shape[:1]:
        raise ValueError(f"mean_latent: mask of shape {tuple(mask.shape)} for latents {tuple(latents.shape)}")
    if not bool(mask.any()):
        raise ConfigError(f"{what}: no sample satisfies the selection; draw more samples or loosen it")
    return latents[mask].mean(0)


def arithmetic(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """``a - b + c`` (e.g. ``"bold 3" - "thin 3" + "thin 7"``)."""
    return a - b + c


class VectorArithmetic:
    """Edits by ``latents + alpha (mean(high) - mean(low))`` of one attribute."""

    def __init__(self, config: VectorArithmeticConfig, *, scorers: dict[str, AttributeScorer] | None = None) -> None:
        self.config = config
        self.space = config.space
        self.scorers = dict(scorers or {})
        self.direction: Tensor | None = None
        self.shape: tuple[int, ...] | None = None

    def fit(self, generator: Any, *, device: torch.device, generator_rng: torch.Generator) -> None:
        cfg = self.config
        check_space(generator, cfg.space)
        self.shape = latent_shape(generator, cfg.space)
        if cfg.direction:
            self.load(cfg.direction, generator)
            return
        name, attribute = parse_attribute(cfg.attribute, field="attribute")
        scorer = self.scorers.get(name) or build_scorer(name, field="attribute")
        latents = sample_latents(generator, cfg.num_samples, cfg.space, generator_rng=generator_rng, device=device)
        scores = score_latents(generator, latents, cfg.space, scorer, attribute, batch_size=cfg.batch_size)
        low, high = extremes(scores, cfg.num_keep)
        latents = latents.cpu()
        self.direction = latents[high].mean(0) - latents[low].mean(0)

    def edit(self, latents: Tensor, alpha: Tensor | float) -> Tensor:
        check_latents(latents, self.shape if self.direction is not None else None, self.space, "vector-arithmetic")
        assert self.direction is not None
        return latents + alpha_like(alpha, latents) * self.direction.to(latents)

    def save(self, path: str | Path, generator: Any) -> Path:
        if self.direction is None:
            raise ConfigError("vector-arithmetic: nothing to save; call fit() first")
        return save_direction(path, self.direction, generator=generator, space=self.space, editor="vector-arithmetic",
                              meta={"attribute": self.config.attribute})

    def load(self, path: str | Path, generator: Any) -> None:
        tensors, _ = load_direction(path, generator=generator, space=self.space)
        self.shape = latent_shape(generator, self.space)
        self.direction = tensors["direction"]


@hookimpl
def ganforge_register_editors(register):
    register("vector-arithmetic", VectorArithmetic, VectorArithmeticConfig)
