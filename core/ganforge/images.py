"""Reading a user's images (every bit depth, bounded in size) and writing samples as pictures (PNG
grids) and arrays (``.npy``), atomically."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision.utils
from torch import Tensor

from .checkpoint import write_output
from .errors import DataError

MAX_IMAGE_PIXELS = 8192 * 8192
"""The largest image :func:`read_image` decodes: a header is read before any pixel, so a
decompression bomb (a small file claiming 100000 x 100000 pixels) is refused before it allocates."""

_INTEGER_MODES = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0}


def read_image(source: str | Path | io.BytesIO, *, channels: int, max_pixels: int = MAX_IMAGE_PIXELS,
               name: str | None = None) -> Tensor:
    """One image as ``[channels, H, W]`` float32 in ``[0, 1]`` (1 = grey, 3 = RGB).

    Every bit depth keeps its range: 16-bit grey (mode ``I;16``, or ``I`` as Pillow opens 16-bit PNGs)
    is divided by 65535, not clipped at 255. An image of more than ``max_pixels`` pixels, or one
    Pillow cannot decode, is a :class:`DataError` naming the file.
    """
    from PIL import Image, UnidentifiedImageError

    label = name or str(source)
    try:
        with warnings.catch_warnings():  # Pillow warns above its own limit; ours, below, is the one that decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source)
        with im:
            width, height = im.size  # from the header: nothing is decoded yet
            if width * height > max_pixels:
                raise DataError(f"image {label}: {width}x{height} is {width * height:,} pixels, more than the "
                                f"{max_pixels:,} pixels ganforge decodes (a decompression bomb, or an image to "
                                "shrink first)")
            if im.mode in _INTEGER_MODES or im.mode == "F":
                scale = _INTEGER_MODES.get(im.mode, 1.0)
                grey = torch.from_numpy(np.asarray(im, dtype=np.float32) / scale).clamp_(0.0, 1.0)[None]
                return grey.expand(channels, -1, -1).clone() if channels == 3 else grey
            converted = im.convert("L" if channels == 1 else "RGB")
            x = torch.frombuffer(bytearray(converted.tobytes()), dtype=torch.uint8)
            return x.view(height, width, channels).permute(2, 0, 1).float().div_(255.0)
    except DataError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own check, at open, above twice its limit
        raise DataError(f"image {label}: more than the {max_pixels:,} pixels ganforge decodes (a decompression "
                        f"bomb, or an image to shrink first; {exc})") from None
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"image {label} cannot be read: {exc}") from None


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


def png_bytes(samples: Tensor, *, nrow: int = 8) -> bytes:
    """``[N, C, H, W]`` images in ``[-1, 1]`` as the bytes of a PNG grid (2 pixels between images),
    or 2-D vectors as a scatter plot: what :func:`save_samples` writes, for a page or a download."""
    picture = to_unit(samples) if samples.dim() == 4 else scatter_image(samples)
    buffer = io.BytesIO()
    torchvision.utils.save_image(picture, buffer, nrow=nrow, padding=2, format="png")
    return buffer.getvalue()


def save_samples(samples: Tensor, path: str | Path, *, nrow: int = 8) -> None:
    """Write ``[N, C, H, W]`` images in ``[-1, 1]`` as a PNG grid, or 2-D vectors as a scatter plot."""
    data = png_bytes(samples, nrow=nrow)

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    write_output(Path(path), write)


def save_array(samples: Tensor, path: str | Path) -> None:
    """Write samples as a float32 ``.npy``: images ``[N, C, H, W]`` in ``[0, 1]``, vectors ``[N, D]``."""
    path = Path(path)
    data = to_unit(samples) if samples.dim() == 4 else samples.detach().float()
    array = data.cpu().numpy().astype(np.float32)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.save(f, array)

    write_output(path, write)
