"""Mode coverage and sample quality on mixtures of Gaussians with known modes.

The protocol of VEEGAN (Srivastava et al. 2017, arXiv:1705.07761, section 5.1) and PacGAN (Lin et
al. 2018, arXiv:1712.04086, section 5.1): draw samples from the generator (2,500 of them), assign
each to its nearest mode centre, and call it *high quality* when it lies within ``3 sigma`` of that
centre. A mode is *covered* when at least ``min_fraction`` (1 %) of all samples are high-quality
samples of that mode. The modes are well separated (``3 sigma`` balls do not overlap), so a sample
is high quality exactly when it lies within ``3 sigma`` of some centre.
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor


@attrs.frozen(kw_only=True)
class ModeStats:
    """What :func:`mode_stats` measures on one set of samples."""

    modes_covered: int  # modes with at least min_fraction of the samples within radius
    num_modes: int
    high_quality: float  # fraction of samples within radius of some centre
    counts: tuple[int, ...]  # high-quality samples per mode

    def as_dict(self) -> dict[str, object]:
        return {"modes_covered": self.modes_covered, "num_modes": self.num_modes,
                "high_quality": self.high_quality, "counts": list(self.counts)}


def nearest_mode(samples: Tensor, centres: Tensor) -> tuple[Tensor, Tensor]:
    """``(index [N], distance [N])`` of each sample's nearest centre (``samples [N, D]``, ``centres [K, D]``)."""
    distance = torch.cdist(samples.detach().double(), centres.double())  # [N, K]
    nearest, index = distance.min(dim=1)
    return index, nearest


def mode_stats(samples: Tensor, centres: Tensor, sigma: float, *, radius: float = 3.0,
               min_fraction: float = 0.01) -> ModeStats:
    """Modes covered and high-quality fraction of ``samples [N, D]`` against ``centres [K, D]``.

    A sample is high quality when its nearest centre is within ``radius * sigma``; a mode is
    covered when it holds at least ``min_fraction * N`` high-quality samples. Non-finite samples
    count as low quality.
    """
    if samples.dim() != 2 or samples.shape[1] != centres.shape[1]:
        raise ValueError(f"samples: expected [N, {centres.shape[1]}], got {list(samples.shape)}")
    n = samples.shape[0]
    if n == 0:
        raise ValueError("samples: expected at least one sample, got none")
    index, distance = nearest_mode(samples, centres)
    good = torch.isfinite(distance) & (distance <= radius * sigma)
    counts = torch.bincount(index[good], minlength=len(centres))
    covered = int((counts >= min_fraction * n).sum())
    return ModeStats(modes_covered=covered, num_modes=len(centres), high_quality=float(good.double().mean()),
                     counts=tuple(int(c) for c in counts))
