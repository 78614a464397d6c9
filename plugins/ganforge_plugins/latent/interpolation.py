"""Interpolation between latents: linear (``lerp``) and spherical (``slerp``, Shoemake 1985; White
2016, "Sampling Generative Networks", arXiv:1609.04468, section 2.1):

``slerp(p0, p1; t) = sin((1 - t) theta) / sin(theta) p0 + sin(t theta) / sin(theta) p1`` with
``theta = arccos(p0 . p1 / (|p0| |p1|))``. For Gaussian latents in high dimension the mass lies on a
thin shell; ``lerp`` midpoints fall inside it (their norm shrinks by ``cos(theta / 2)``) while
``slerp`` follows the great circle (norms interpolate when ``|p0| == |p1|``).

The ``interpolate`` sampler draws two Gaussian endpoints and returns ``n`` latents evenly spaced
between them (both included), so that ``G(sampler.sample(n, ...))`` is an interpolation strip.
"""

from __future__ import annotations

import attrs
import torch
from attrs import validators as v
from ganforge import ConfigError, LatentSpace, hookimpl
from torch import Tensor

MODES = ("lerp", "slerp")


@attrs.frozen(kw_only=True)
class InterpolateSamplerConfig:
    mode: str = attrs.field(default="slerp", validator=v.in_(MODES))  # White 2016 recommends slerp
    std: float = attrs.field(default=1.0, validator=v.gt(0.0))  # endpoints ~ N(0, std^2 I)


def _weights(t: Tensor | float, like: Tensor) -> Tensor:
    """``t`` as a tensor broadcasting over the latent dims of ``like`` (``[N, *S]``)."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.ndim == 1:
        t = t.reshape(-1, *([1] * (like.ndim - 1)))
    return t


def lerp(a: Tensor, b: Tensor, t: Tensor | float) -> Tensor:
    """``(1 - t) a + t b``; ``t`` a scalar or ``[N]`` (one weight per row)."""
    if a.shape != b.shape:
        raise ValueError(f"lerp: endpoints must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return torch.lerp(a, b, _weights(t, a))


def slerp(a: Tensor, b: Tensor, t: Tensor | float, *, eps: float = 1e-7) -> Tensor:
    """Spherical interpolation of each row (flattened over its latent dims) of ``a`` towards ``b``.

    ``t`` is a scalar or ``[N]``. Where the endpoints are (anti)parallel the arc is undefined and the
    function falls back to :func:`lerp`. Endpoints are returned exactly at ``t = 0`` and ``t = 1``.
    """
    if a.shape != b.shape:
        raise ValueError(f"slerp: endpoints must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    batch = a.shape[0] if a.ndim > 1 else 1
    fa, fb = a.reshape(batch, -1), b.reshape(batch, -1)
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device).reshape(-1, 1)  # [N or 1, 1]
    cos = (fa * fb).sum(1, keepdim=True) / (fa.norm(dim=1, keepdim=True) * fb.norm(dim=1, keepdim=True)).clamp_min(eps)
    theta = cos.clamp(-1.0, 1.0).acos()  # [N, 1]
    sin = theta.sin()
    degenerate = sin.abs() < 1e-4
    safe = torch.where(degenerate, torch.ones_like(sin), sin)
    wa = torch.where(degenerate, 1 - t, ((1 - t) * theta).sin() / safe)
    wb = torch.where(degenerate, t, (t * theta).sin() / safe)
    return (wa * fa + wb * fb).reshape(a.shape)


def interpolate(a: Tensor, b: Tensor, steps: int, *, mode: str = "slerp") -> Tensor:
    """``steps`` latents from ``a`` to ``b`` (both ``[*S]``, one latent), both ends included: ``[steps, *S]``."""
    if mode not in MODES:
        raise ConfigError(f"mode: must be one of {list(MODES)}, got {mode!r}")
    if steps < 2:
        raise ConfigError(f"steps: an interpolation needs at least 2 steps (its two ends), got {steps}")
    t = torch.linspace(0.0, 1.0, steps, dtype=a.dtype, device=a.device)
    ea, eb = a.expand(steps, *a.shape), b.expand(steps, *b.shape)
    return slerp(ea, eb, t) if mode == "slerp" else lerp(ea, eb, t)


class InterpolateSampler:
    """``sample(n)``: an ``n``-step interpolation between two Gaussian latents (an image strip)."""

    def __init__(self, config: InterpolateSamplerConfig) -> None:
        self.config = config

    def sample(self, n: int, space: LatentSpace, *, device: torch.device, generator: torch.Generator) -> Tensor:
        ends = torch.randn((2, *space.shape), device=device, generator=generator) * self.config.std
        if n == 1:
            return ends[:1]
        return interpolate(ends[0], ends[1], n, mode=self.config.mode)


@hookimpl
def ganforge_register_samplers(register):
    register("interpolate", InterpolateSampler, InterpolateSamplerConfig)
