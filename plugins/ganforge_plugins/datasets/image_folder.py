"""Your own images from a local folder: flat (unlabelled) or one sub-folder per class (labelled).

Every image is read by :func:`ganforge.read_image` (every bit depth; at most ``max_pixels`` pixels,
checked from its header before decoding), converted to ``channels`` (1 = grayscale, 3 = RGB),
centre-cropped to a square,
resized to ``resolution`` and held in memory in ``[-1, 1]``. With sub-folders, each sub-folder name
is a class, in sorted order, and loose files beside them are an error rather than silently dropped.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import MAX_IMAGE_PIXELS, DataError, DataSpec, hookimpl, power_of_two, read_image

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@attrs.frozen(kw_only=True)
class ImageFolderConfig:
    root: str
    resolution: int = attrs.field(default=64, validator=power_of_two(4, 1024))
    channels: int = attrs.field(default=3, validator=v.in_((1, 3)))
    max_pixels: int = attrs.field(default=MAX_IMAGE_PIXELS, validator=v.ge(1))  # per image, before decoding


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)


def _load(path: Path, channels: int, resolution: int, max_pixels: int) -> torch.Tensor:
    try:
        x = read_image(path, channels=channels, max_pixels=max_pixels)
    except DataError as exc:
        raise DataError(f"data.root: {exc}") from None
    side = min(x.shape[1:])
    top, left = (x.shape[1] - side) // 2, (x.shape[2] - side) // 2
    x = x[:, top : top + side, left : left + side].unsqueeze(0)
    if side != resolution:
        x = F.interpolate(x, size=(resolution,) * 2, mode="bilinear", antialias=side > resolution,
                          align_corners=False).clamp_(0.0, 1.0)
    return x[0]


@attrs.define
class ImageFolder:
    """Images from a local folder, flat or with one sub-folder per class."""

    spec: DataSpec
    images: torch.Tensor
    labels: torch.Tensor | None

    @classmethod
    def from_config(cls, config: ImageFolderConfig) -> ImageFolder:
        root = Path(config.root).expanduser()
        if not root.is_dir():
            raise DataError(f"data.root: directory {str(root)!r} does not exist")
        classes = sorted(p for p in root.iterdir() if p.is_dir() and _images_in(p))
        loose = _images_in(root)
        if classes and loose:
            raise DataError(
                f"data.root: {root} has both class sub-folders ({', '.join(c.name for c in classes[:3])}, ...) "
                f"and loose images ({loose[0].name}, ...); put every image in a class folder, or none"
            )
        if classes:
            files = [(f, i) for i, c in enumerate(classes) for f in _images_in(c)]
        else:
            files = [(f, -1) for f in loose]
        if not files:
            raise DataError(f"data.root: {root} holds no images ({', '.join(EXTENSIONS)})")
        images = torch.stack([_load(f, config.channels, config.resolution, config.max_pixels) for f, _ in files])
        labels = torch.tensor([i for _, i in files], dtype=torch.long) if classes else None
        spec = DataSpec(
            shape=(config.channels, config.resolution, config.resolution),
            num_classes=len(classes) if classes else None,
            class_names=tuple(c.name for c in classes),
        )
        return cls(spec=spec, images=images * 2.0 - 1.0, labels=labels)


@hookimpl
def ganforge_register_datasets(register):
    register("image-folder", ImageFolder.from_config, ImageFolderConfig)
