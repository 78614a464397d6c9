"""Truncation and style mixing in the latent spaces of a style-based generator (Karras et al. 2019,
"A Style-Based Generator Architecture for GANs", arXiv:1812.04948).

- Truncation (section 3.2 / appendix B): ``w' = w_avg + psi (w - w_avg)``; ``psi = 1`` is the
  untruncated ``w``, ``psi = 0`` the average image, ``psi < 0`` its "opposite".
- Multi-modal truncation (Mokady et al. 2022, "Self-Distilled StyleGAN", arXiv:2202.12211, section 4):
  when the data has several modes (ten digits), ``w_avg`` lies between them and truncating towards it
  makes every sample more like one average digit, less like its own. The ``w`` of ``num_samples``
  latents are clustered by k-means into ``k`` centres and each ``w`` is truncated towards its nearest
  centre instead: ``w' = c(w) + psi (w - c(w))``. ``k = 1`` (the mean) is ordinary truncation.
- Style mixing (section 3.1, figure 3): copying B's styles into A's W+ over a layer range: the
  ``coarse`` range (4x4-8x8) brings B's pose and shape, ``middle`` (16x16-32x32) smaller features,
  ``fine`` (64x64 up) colour scheme and micro-structure. A range is a name of the generator's
  ``layer_ranges`` or ``"start:stop"`` indices into W+.
"""

from __future__ import annotations

from typing import Any

import torch
from ganforge import ConfigError, kmeans, layer_range, nearest_mode
from torch import Tensor

from ganforge_plugins.latent.spaces import check_space, unwrap, z_to
from ganforge_plugins.models.stylegan import PSI_RANGE, check_psi


def resolve_layers(generator: Any, layers: str, *, field: str = "layers") -> range:
    """The W+ indices a range name (``coarse``, ``middle``, ``fine``, ``all``) or ``"start:stop"`` stands for."""
    check_space(generator, "w+", field=field)
    return layer_range(unwrap(generator), layers, field=field)


def layer_mask(generator: Any, layers: str, *, field: str = "layers") -> Tensor:
    """``[num_ws]`` booleans, true on the W+ styles ``layers`` names (an edit confined to a style range)."""
    r = resolve_layers(generator, layers, field=field)
    mask = torch.zeros(unwrap(generator).num_ws, dtype=torch.bool)  # type: ignore[arg-type]
    mask[r.start:r.stop] = True
    return mask


def truncate(w: Tensor, w_avg: Tensor, psi: float) -> Tensor:
    """``w_avg + psi (w - w_avg)`` on ``[N, w_dim]`` or W+ ``[N, num_ws, w_dim]``."""
    check_psi(psi)
    return w_avg.lerp(w, psi)


@torch.no_grad()
def sample_truncated(generator: Any, n: int, psi: float, *, generator_rng: torch.Generator,
                     space: str = "w", device: torch.device | str = "cpu") -> Tensor:
    """``n`` truncated latents in ``w`` or ``w+`` of a style generator (ConfigError on another generator
    or for ``psi`` outside ``[{lo}, {hi}]``)."""
    psi = check_psi(psi)
    if space not in ("w", "w+"):
        raise ConfigError(f"space: truncation applies in 'w' or 'w+', got {space!r}")
    check_space(generator, space)
    g = unwrap(generator)
    z = torch.randn((n, *g.latent_spaces[0].shape), generator=generator_rng, device=device)
    w = truncate(z_to(g, z, "w"), g.w_avg, psi)  # type: ignore[arg-type]
    return w if space == "w" else w[:, None].repeat(1, g.num_ws, 1)  # type: ignore[arg-type]


sample_truncated.__doc__ = (sample_truncated.__doc__ or "").format(lo=PSI_RANGE[0], hi=PSI_RANGE[1])


@torch.no_grad()
def truncation_modes(generator: Any, k: int, *, num_samples: int = 10_000, generator_rng: torch.Generator,
                     device: torch.device | str = "cpu") -> Tensor:
    """``[k, w_dim]``: k-means centres of the ``w`` of ``num_samples`` latents (multi-modal truncation's
    modes; ``k = 1`` gives the sample mean, which ``w_avg`` tracks)."""
    check_space(generator, "w")
    g = unwrap(generator)
    z = torch.randn((num_samples, *g.latent_spaces[0].shape), generator=generator_rng, device=device)
    w: Tensor = z_to(g, z, "w")
    return kmeans(w.float(), k, generator_rng=generator_rng)


def truncate_to_modes(w: Tensor, modes: Tensor, psi: float) -> Tensor:
    """Each ``w`` (``[N, w_dim]`` or W+ ``[N, num_ws, w_dim]``, by its first style) truncated towards the
    nearest of ``modes`` ``[k, w_dim]``: ``c + psi (w - c)``."""
    check_psi(psi)
    centre = nearest_mode(w, modes)
    return (centre if w.ndim == 2 else centre[:, None]).lerp(w, psi)


def mix_range(ws_a: Tensor, ws_b: Tensor, layers: range) -> Tensor:
    """A's W+ with B's styles at ``layers`` (``ws_a``, ``ws_b``: ``[N, num_ws, w_dim]``; B may be ``[1, ...]``)."""
    if ws_a.ndim != 3 or ws_b.ndim != 3 or ws_a.shape[1:] != ws_b.shape[1:]:
        raise ValueError(f"mix_range: expected two W+ batches [N, num_ws, w_dim], got {tuple(ws_a.shape)} "
                         f"and {tuple(ws_b.shape)}")
    mask = torch.zeros(ws_a.shape[1], dtype=torch.bool, device=ws_a.device)
    mask[layers.start:layers.stop] = True
    return torch.where(mask[None, :, None], ws_b, ws_a)


def style_mix(generator: Any, ws_a: Tensor, ws_b: Tensor, layers: str = "coarse") -> Tensor:
    """``mix_range`` with the range named as :func:`resolve_layers` reads it (``coarse``/``middle``/``fine``)."""
    return mix_range(ws_a, ws_b, resolve_layers(generator, layers))


@torch.no_grad()
def style_mixing_grid(generator: Any, ws_a: Tensor, ws_b: Tensor, layers: str = "coarse") -> Tensor:
    """Figure 3 of the paper: images ``[len(B), len(A), *S]`` where row ``i`` mixes B_i's styles in
    ``layers`` into every A."""
    g = unwrap(generator)
    rows = [g.synthesis(style_mix(g, ws_a, b[None].expand_as(ws_a), layers)) for b in ws_b]  # type: ignore[operator]
    return torch.stack(rows)
