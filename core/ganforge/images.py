"""Writing samples as pictures (PNG grids) and arrays (``.npy``), atomically."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision.utils
from torch import Tensor

from .checkpoint import atomic_write
from .errors import OutputError


def to_unit(samples: Tensor) -> Tensor:
    """Images from the engine's ``[-1, 1]`` to ``[0, 1]``, clamped."""
    return ((samples.detach().float() + 1.0) / 2.0).clamp_(0.0, 1.0)


def scatter_image(points: Tensor, size: int = 256, extent: float | None = None) -> Tensor:
    """Rasterise 2-D points ``[N, 2]`` into a ``[3, size, size]`` picture in ``[0, 1]``."""
    pts = points.detach().float().cpu()
    extent = extent or float(pts.abs().max().clamp(min=1e-6)) * 1.1
    pix = ((pts / extent + 1.0) / 2.0 * (size - 1)).round().long()
    keep = ((pix >= 0) & (pix < size)).all(dim=1)
    pix = pix[keep]
    img = torch.ones(3, size, size)
    img[:, size // 2, :] = img[:, :, size // 2] = 0.85  # axes
    img[0, size - 1 - pix[:, 1], pix[:, 0]] = 0.1
    img[1, size - 1 - pix[:, 1], pix[:, 0]] = 0.3
    img[2, size - 1 - pix[:, 1], pix[:, 0]] = 0.8
    return img


def preview_picture(samples: Tensor, *, nrow: int = 8) -> Tensor:
    """``[3, H, W]`` in ``[0, 1]``: images in a grid, or 2-D vectors as a scatter plot."""
    if samples.dim() != 4:
        return scatter_image(samples)
    grid: Tensor = torchvision.utils.make_grid(to_unit(samples).cpu(), nrow=nrow, padding=2)
    return grid


def save_samples(samples: Tensor, path: str | Path, *, nrow: int = 8) -> None:
    """Write ``[N, C, H, W]`` images in ``[-1, 1]`` as a PNG grid, or 2-D vectors as a scatter plot."""
    path = Path(path)
    picture = to_unit(samples) if samples.dim() == 4 else scatter_image(samples)

    def write(tmp: Path) -> None:
        buffer = io.BytesIO()
        torchvision.utils.save_image(picture, buffer, nrow=nrow, padding=2, format="png")
        tmp.write_bytes(buffer.getvalue())

    _write(path, write)


def save_array(samples: Tensor, path: str | Path) -> None:
    """Write samples as a float32 ``.npy``: images ``[N, C, H, W]`` in ``[0, 1]``, vectors ``[N, D]``."""
    path = Path(path)
    data = to_unit(samples) if samples.dim() == 4 else samples.detach().float()
    array = data.cpu().numpy().astype(np.float32)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.save(f, array)

    _write(path, write)


def _write(path: Path, write: Callable[[Path], None]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, write)
    except OSError as exc:
        raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
