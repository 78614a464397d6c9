"""Multi-modal truncation (Mokady et al. 2022, "Self-Distilled StyleGAN", arXiv:2202.12211, section 4).

When the data has several modes (ten digits), ``w_avg`` lies between them, and truncating towards it
makes every sample more like one average image and less like its own mode. Instead the ``w`` of many
latents are clustered by k-means and each ``w`` is truncated towards its nearest centre ``c(w)``:
``w' = c(w) + psi (w - c(w))``; one centre, the mean, is ordinary truncation. The sampling command
(``ganforge sample --psi-modes K``) and the latent plugins share these two functions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .errors import ConfigError


def kmeans(x: Tensor, k: int, *, generator_rng: torch.Generator, iterations: int = 50) -> Tensor:
    """``[k, D]`` centres of ``x`` ``[N, D]`` by Lloyd's algorithm from ``k`` distinct random points (a centre
    left without points keeps its place); deterministic for a seeded ``generator_rng``."""
    if not 1 <= k <= len(x):
        raise ConfigError(f"modes: expected 1 <= k <= {len(x)} (the samples clustered), got {k}")
    pick = torch.randperm(len(x), generator=generator_rng, device=generator_rng.device)[:k].to(x.device)
    centres = x[pick].clone()
    for _ in range(iterations):
        nearest = torch.cdist(x, centres).argmin(1)
        counts = torch.bincount(nearest, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centres).index_add_(0, nearest, x)
        moved = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
        if torch.equal(moved, centres):
            break
        centres = moved
    return centres


def nearest_mode(w: Tensor, modes: Tensor) -> Tensor:
    """``[N, w_dim]``: the nearest of ``modes`` ``[k, w_dim]`` to each ``w`` (``[N, w_dim]``, or W+
    ``[N, num_ws, w_dim]`` by its first style, the one every style starts from)."""
    first = w if w.ndim == 2 else w[:, 0]
    return modes.to(w)[torch.cdist(first.float(), modes.float()).argmin(1)]
