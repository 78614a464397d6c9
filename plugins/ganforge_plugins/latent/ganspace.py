"""GANSpace: Härkönen, Hertzmann, Lehtinen & Paris 2020, "GANSpace: Discovering Interpretable GAN
Controls" (arXiv:2004.02546).

Section 2.2 (StyleGAN): sample ``N`` latents ``z``, map them to ``w = M(z)``, and run PCA on the
``w`` to get a basis ``V`` (components ``v_k``, unit vectors, ordered by explained variance). An edit
moves ``w' = w + V x`` (eq. 2); applying it only to a range of the W+ layers (the paper's
``E(v_i, j-k)`` notation) separates e.g. pose (coarse layers) from colour (fine layers). Here
``edit(latents, alpha)`` adds ``alpha sigma_k v_k``, ``alpha`` in units of the component's standard
deviation ``sigma_k`` (the paper's sliders are in sigma), to the layers ``layers`` of W+ latents
(``layers = "all"`` edits ``w`` itself, or ``z`` with ``pca_space = "z"`` for any generator).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch
from attrs import validators as v
from ganforge import ConfigError, hookimpl
from torch import Tensor

from ganforge_plugins.latent.editing import alpha_like, check_latents, load_direction, save_direction
from ganforge_plugins.latent.spaces import check_space, latent_shape, sample_latents


@attrs.frozen(kw_only=True)
class GANSpaceConfig:
    pca_space: str = attrs.field(default="w", validator=v.in_(("z", "w")))  # paper: w for StyleGAN
    layers: str = "all"  # "all", "coarse", "middle", "fine" or "start:stop" (then edits W+)
    component: int = attrs.field(default=0, validator=v.ge(0))  # which principal component edit() uses
    num_components: int = attrs.field(default=10, validator=v.ge(1))
    num_samples: int = attrs.field(default=10000, validator=v.ge(2))  # paper: 1M for StyleGAN
    direction: str = ""  # a saved components file to load instead of fitting

    def __attrs_post_init__(self) -> None:
        if self.component >= self.num_components:
            raise ValueError(f"'component' must be < num_components = {self.num_components} (got {self.component})")


def pca(x: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """PCA of the rows of ``x`` ``[N, D]``: ``(mean [D], components [k, D] (unit rows), variance [k],
    explained variance ratio [k])``, components ordered by decreasing variance. Each component's sign is
    fixed so that its largest-magnitude coordinate is positive (deterministic across runs)."""
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"pca: expected [N >= 2, D] samples, got {tuple(x.shape)}")
    x = x.double()
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
    variance = s.square() / (x.shape[0] - 1)
    total = variance.sum().clamp_min(1e-30)
    k = min(k, vh.shape[0])
    comps = vh[:k]
    sign = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    comps = comps * sign
    return mean.float(), comps.float(), variance[:k].float(), (variance[:k] / total).float()


class GANSpace:
    """Edits along a principal component of sampled ``w`` (or ``z``), optionally on a W+ layer range."""

    def __init__(self, config: GANSpaceConfig) -> None:
        self.config = config
        self.space = config.pca_space if config.layers == "all" else "w+"
        self.mean: Tensor | None = None
        self.components: Tensor | None = None  # [k, D]
        self.explained_variance: Tensor | None = None
        self.explained_variance_ratio: Tensor | None = None
        self.layer_mask: Tensor | None = None  # [num_ws] for W+ edits
        self.shape: tuple[int, ...] | None = None

    def _setup(self, generator: Any) -> None:
        from ganforge_plugins.latent.style import layer_mask

        check_space(generator, self.config.pca_space, field="pca_space")
        if self.space == "w+":
            check_space(generator, "w+", field="layers")
            if self.config.pca_space != "w":
                raise ConfigError(f"layers: a layer range ({self.config.layers!r}) edits W+ and needs pca_space = 'w', "
                                  f"got {self.config.pca_space!r}")
            self.layer_mask = layer_mask(generator, self.config.layers)
        self.shape = latent_shape(generator, self.space)

    def fit(self, generator: Any, *, device: torch.device, generator_rng: torch.Generator) -> None:
        self._setup(generator)
        if self.config.direction:
            self.load(self.config.direction, generator)
            return
        x = sample_latents(generator, self.config.num_samples, self.config.pca_space, generator_rng=generator_rng,
                           device=device)
        self.mean, self.components, self.explained_variance, self.explained_variance_ratio = pca(
            x.reshape(len(x), -1).cpu(), self.config.num_components)
        if self.components.shape[0] <= self.config.component:
            raise ConfigError(f"component: {self.config.component} is beyond the {self.components.shape[0]} "
                              "components the samples have")

    def direction(self, component: int | None = None) -> Tensor:
        """``sigma_k v_k`` ``[D]`` of ``component`` (the config's by default)."""
        if self.components is None or self.explained_variance is None:
            raise ConfigError("ganspace: call fit(generator, ...) or load a components file first")
        k = self.config.component if component is None else component
        return self.components[k] * self.explained_variance[k].sqrt()

    def edit(self, latents: Tensor, alpha: Tensor | float, *, component: int | None = None) -> Tensor:
        check_latents(latents, self.shape if self.components is not None else None, self.space, "ganspace")
        step = self.direction(component).to(latents)
        if self.space == "w+":
            assert self.layer_mask is not None
            step = step[None, :] * self.layer_mask.to(latents)[:, None]  # [num_ws, w_dim]
        return latents + alpha_like(alpha, latents) * step

    def save(self, path: str | Path, generator: Any) -> Path:
        if self.components is None:
            raise ConfigError("ganspace: nothing to save; call fit() first")
        assert self.mean is not None and self.explained_variance is not None
        assert self.explained_variance_ratio is not None
        return save_direction(path, self.components, generator=generator, space=self.config.pca_space,
                              editor="ganspace", extra={"mean": self.mean, "variance": self.explained_variance,
                                                        "ratio": self.explained_variance_ratio})

    def load(self, path: str | Path, generator: Any) -> None:
        self._setup(generator)
        tensors, _ = load_direction(path, generator=generator, space=self.config.pca_space)
        self.components, self.mean = tensors["direction"], tensors["mean"]
        self.explained_variance, self.explained_variance_ratio = tensors["variance"], tensors["ratio"]


@hookimpl
def ganforge_register_editors(register):
    register("ganspace", GANSpace, GANSpaceConfig)
