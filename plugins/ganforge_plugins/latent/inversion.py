"""GAN inversion by optimisation: find the latent whose image reproduces a target image.

Zhu, Krähenbühl, Shechtman & Efros 2016, "Generative Visual Manipulation on the Natural Image
Manifold" (arXiv:1609.03552), eq. 1: ``z* = argmin_z L(G(z), x)``; Abdal, Qin & Wonka 2019,
"Image2StyleGAN" (arXiv:1904.03189), section 4: optimising in W+ (one ``w`` per layer) starting
from the mean latent ``w_avg`` reaches far lower reconstruction error than Z or W, with Adam
(lr 0.01, ``beta = (0.9, 0.999)``; 5000 steps in the paper). Here, as in the paper's eq. 3,
``L = MSE(G(w), x) + feature_weight L_feat(G(w), x)`` with a feature loss over a pluggable frozen
network (:mod:`.feature_loss`: ganforge's domain classifier by default, VGG16 from a local weights
file; ``feature_weight = 0`` leaves the pixel loss alone).
Reconstruction quality is reported as PSNR for images in ``[-1, 1]`` (peak-to-peak 2):
``PSNR = 10 log10(2^2 / MSE)``.

Start points: ``z = 0`` (the prior's mode) for Z, ``w_avg`` for W and W+ (``init = "mean"``), or a
latent the caller gives (the hybrid method starts from an encoder's output). The landscape of a
style generator has local minima (its instance normalisation and leaky ReLUs); ``restarts > 1`` runs
the optimisation again from prior draws and keeps, per image, the latent with the highest PSNR.
"""

from __future__ import annotations

import math
import time
from typing import Any

import attrs
import torch
from attrs import validators as v
from ganforge import DataError
from torch import Tensor

from ganforge_plugins.latent.feature_loss import FeatureNetwork, build_feature_network
from ganforge_plugins.latent.spaces import SPACES, check_space, latent_shape, render, unwrap


@attrs.frozen(kw_only=True)
class InversionConfig:
    space: str = attrs.field(default="w+", validator=v.in_(SPACES))  # Image2StyleGAN: W+
    steps: int = attrs.field(default=1000, validator=v.ge(1))  # paper: 5000
    lr: float = attrs.field(default=0.01, validator=v.gt(0.0))  # Adam, paper: 0.01
    init: str = attrs.field(default="mean", validator=v.in_(("mean", "random")))  # mean: z = 0 / w_avg
    restarts: int = attrs.field(default=1, validator=v.ge(1))  # runs (the later from prior draws); best per image
    feature_weight: float = attrs.field(default=1.0, validator=v.ge(0.0))  # Image2StyleGAN eq. 3: 1
    feature_network: str = "auto"  # "auto" (the domain classifier), a registered classifier, or "vgg16"
    feature_weights: str = ""  # a local weights file (required for vgg16)


def psnr(x: Tensor, y: Tensor, *, peak_to_peak: float = 2.0) -> Tensor:
    """``[N]`` PSNR in dB between images in ``[-1, 1]``: ``10 log10(range^2 / MSE)`` (inf when equal)."""
    mse = (x.float() - y.float()).square().flatten(1).mean(1)
    return 10 * torch.log10(peak_to_peak**2 / mse)


def check_targets(generator: Any, images: Tensor, *, field: str = "images") -> tuple[int, ...]:
    """The generator's output shape, after checking ``images`` ``[N, C, H, W]`` have it (DataError otherwise)."""
    g = unwrap(generator)
    with torch.no_grad():
        z = torch.zeros(1, *g.latent_spaces[0].shape, device=images.device)
        shape = tuple(g(z).shape[1:])
    if images.ndim != 4 or tuple(images.shape[1:]) != shape:
        raise DataError(f"{field}: the generator makes images of shape [N, {', '.join(map(str, shape))}] "
                        f"(channels, height, width); got {list(images.shape)}")
    if not torch.isfinite(images).all() or images.min() < -1 - 1e-3 or images.max() > 1 + 1e-3:
        raise DataError(f"{field}: expected finite values in [-1, 1], got range "
                        f"[{float(images.min()):.3g}, {float(images.max()):.3g}]")
    return shape


def start_point(generator: Any, n: int, space: str, init: str, *, generator_rng: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> Tensor:
    """Initial latents: ``z = 0`` / ``w_avg`` (``mean``) or a prior draw (``random``)."""
    g = unwrap(generator)
    shape = latent_shape(g, space)
    if init == "random":
        z = torch.randn((n, *g.latent_spaces[0].shape), generator=generator_rng, device=device)
        if space == "z":
            return z
        with torch.no_grad():
            w = g.mapping(z)  # type: ignore[operator]
        return w if space == "w" else w[:, None].repeat(1, shape[0], 1)
    if space == "z":
        return torch.zeros((n, *shape), device=device)
    w_avg = g.w_avg.to(device)  # type: ignore[union-attr]
    return w_avg.expand(n, *shape).clone()


def invert(generator: Any, images: Tensor, config: InversionConfig, *, start: Tensor | None = None,
           generator_rng: torch.Generator | None = None, progress: Any = None) -> tuple[Tensor, dict[str, Any]]:
    """Optimise latents in ``config.space`` so that their images match ``images`` in MSE.

    Returns the latents ``[N, *space]`` and a record: final per-image ``psnr`` (list), ``loss`` per step
    and ``seconds``. The generator's weights are left untouched (no gradients accumulate in them).
    """
    check_space(generator, config.space)
    g = unwrap(generator)
    check_targets(g, images)
    images = images.detach()
    if start is None:
        start = start_point(g, len(images), config.space, config.init, generator_rng=generator_rng,
                            device=images.device)
    elif tuple(start.shape) != (len(images), *latent_shape(g, config.space)):
        raise DataError(f"start: expected latents [{len(images)}, "
                        f"{', '.join(map(str, latent_shape(g, config.space)))}], got {list(start.shape)}")
    t0 = time.perf_counter()
    features = None
    if config.feature_weight > 0:
        features = build_feature_network(config.feature_network, channels=images.shape[1],
                                         weights=config.feature_weights, device=images.device)
    latents, losses = _optimise(g, images, start, config, features, progress)
    with torch.no_grad():
        quality = psnr(render(g, latents, config.space), images)
    for _ in range(config.restarts - 1):
        again, more = _optimise(g, images, start_point(g, len(images), config.space, "random",
                                                       generator_rng=generator_rng, device=images.device), config,
                                  features, progress)
        with torch.no_grad():
            q = psnr(render(g, again, config.space), images)
        better = q > quality
        latents[better], quality = again[better], torch.maximum(q, quality)
        losses += more
    seconds = time.perf_counter() - t0
    record = {"psnr": [q if math.isfinite(q) else 999.0 for q in quality.tolist()], "loss": losses,
              "seconds": seconds, "steps": config.steps * config.restarts, "space": config.space}
    return latents, record


def reconstruction_loss(fake: Tensor, images: Tensor, *, features: FeatureNetwork | None = None,
                        target_features: list[Tensor] | None = None, feature_weight: float = 0.0) -> Tensor:
    """``MSE(fake, images) + feature_weight L_feat(fake, images)`` (the pixel loss alone without ``features``)."""
    loss = (fake - images).square().mean()
    if features is not None and feature_weight > 0:
        target = target_features if target_features is not None else [t.detach() for t in features(images)]
        loss = loss + feature_weight * features.loss(fake, target)
    return loss


def _optimise(g: Any, images: Tensor, start: Tensor, config: InversionConfig,
              features: FeatureNetwork | None = None, progress: Any = None) -> tuple[Tensor, list[float]]:
    """``config.steps`` Adam steps on the reconstruction loss from ``start``; the generator's weights stay frozen."""
    latents = start.detach().clone().requires_grad_(True)
    with torch.no_grad():
        target = features(images) if features is not None else None
    opt = torch.optim.Adam([latents], lr=config.lr, betas=(0.9, 0.999))
    requires = [p.requires_grad for p in g.parameters()]
    g.requires_grad_(False)
    losses: list[float] = []
    try:
        for _ in range(config.steps):
            loss = reconstruction_loss(render(g, latents, config.space), images, features=features,
                                       target_features=target, feature_weight=config.feature_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            losses.append(float(loss.detach()))
            if progress is not None:  # a ganforge.Progress
                progress.advance(info=f"loss={losses[-1]:.4g}")
    finally:
        for p, r in zip(g.parameters(), requires, strict=True):
            p.requires_grad_(r)
    return latents.detach(), losses
