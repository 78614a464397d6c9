"""MNIST and Fashion-MNIST from their idx files in a local directory (gzipped or not).

MNIST: LeCun, Bottou, Bengio & Haffner 1998; Fashion-MNIST: Xiao, Rasul & Vollgraf 2017
(arXiv:1708.07747). Both are 28x28 grayscale in the same idx format: a big-endian header (magic
``0x00000803`` for images, ``0x00000801`` for labels, then the sizes) followed by raw bytes.
Nothing is downloaded: ``root`` must hold the files.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import DataError, DataSpec, hookimpl, power_of_two

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")


@attrs.frozen(kw_only=True)
class MNISTConfig:
    root: str
    split: str = attrs.field(default="train", validator=v.in_(tuple(FILES)))
    resolution: int = attrs.field(default=32, validator=power_of_two(4, 1024))
    # "pad" centres the 28x28 digit on a larger canvas (as PGGAN/StyleGAN do for MNIST at 32x32);
    # "resize" rescales it. Smaller resolutions always resize.
    fit: str = attrs.field(default="pad", validator=v.in_(("pad", "resize")))
    limit: int = attrs.field(default=0, validator=v.ge(0))  # keep the first `limit` images; 0 = all


@attrs.frozen(kw_only=True)
class FashionMNISTConfig(MNISTConfig):
    root: str = "/usr/share/datasets/fashion-mnist"


def _open(root: Path, stem: str) -> bytes:
    for path, opener in ((root / f"{stem}.gz", gzip.open), (root / stem, open)):
        if path.is_file():
            try:
                with opener(path, "rb") as f:
                    return f.read()
            except (OSError, EOFError) as exc:
                raise DataError(f"data.root: cannot read {path}: {exc}") from None
    raise DataError(f"data.root: {root} holds neither {stem}.gz nor {stem}")


def read_idx(data: bytes, *, expected_dims: int, source: str) -> np.ndarray:
    """The array stored in an idx file of unsigned bytes."""
    if len(data) < 4:
        raise DataError(f"{source} is not an idx file (only {len(data)} bytes)")
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08 or dims != expected_dims:
        raise DataError(f"{source} is not an idx file of {expected_dims}-d unsigned bytes (header {data[:4].hex()})")
    if len(data) < 4 + 4 * dims:
        raise DataError(f"{source} is truncated: its header needs {4 + 4 * dims} bytes for {dims} dimensions, "
                        f"the file has {len(data)}")
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{source} is truncated: header says {shape}, found {body.size} values")
    return body.reshape(shape)


@attrs.define
class IdxImages:
    """A 28x28 grayscale idx dataset (MNIST, Fashion-MNIST) held in memory."""

    spec: DataSpec
    images: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def load(cls, config: MNISTConfig, class_names: tuple[str, ...]) -> IdxImages:
        root = Path(config.root).expanduser()
        if not root.is_dir():
            raise DataError(
                f"data.root: directory {str(root)!r} does not exist (expected the {config.split} idx files)"
            )
        image_stem, label_stem = FILES[config.split]
        images = read_idx(_open(root, image_stem), expected_dims=3, source=str(root / image_stem))
        labels = read_idx(_open(root, label_stem), expected_dims=1, source=str(root / label_stem))
        if len(images) != len(labels):
            raise DataError(f"data.root: {len(images)} images but {len(labels)} labels in {root}")
        if labels.size and int(labels.max()) >= len(class_names):  # found now, not when a batch draws one
            bad = int(np.argmax(labels >= len(class_names)))
            raise DataError(f"{root / label_stem}: label {int(labels[bad])} at index {bad} is out of range; "
                            f"expected 0..{len(class_names) - 1}")
        if config.limit:
            images, labels = images[: config.limit], labels[: config.limit]
        x = torch.from_numpy(images.copy()).float().div_(255.0).unsqueeze(1)  # [N, 1, 28, 28]
        x = fit_resolution(x, config.resolution, config.fit)
        spec = DataSpec(shape=(1, config.resolution, config.resolution), num_classes=10, class_names=class_names)
        return cls(spec=spec, images=x.mul_(2.0).sub_(1.0), labels=torch.from_numpy(labels.astype(np.int64)))


def fit_resolution(x: torch.Tensor, resolution: int, fit: str) -> torch.Tensor:
    """``[N, C, h, w]`` images in ``[0, 1]`` to ``resolution`` by zero-padding or resizing."""
    h = x.shape[-1]
    if fit == "pad" and resolution >= h:
        before = (resolution - h) // 2
        return F.pad(x, (before, resolution - h - before) * 2)
    if resolution == h:
        return x
    return F.interpolate(x, size=(resolution,) * 2, mode="bilinear", antialias=resolution < h,
                         align_corners=False).clamp_(0.0, 1.0)


def mnist(config: MNISTConfig) -> IdxImages:
    """MNIST handwritten digits (LeCun et al. 1998) from local idx files."""
    return IdxImages.load(config, tuple(str(i) for i in range(10)))


def fashion_mnist(config: FashionMNISTConfig) -> IdxImages:
    """Fashion-MNIST clothing images (Xiao et al. 2017) from local idx files."""
    return IdxImages.load(config, FASHION_CLASSES)


@hookimpl
def ganforge_register_datasets(register):
    register("mnist", mnist, MNISTConfig)
    register("fashion-mnist", fashion_mnist, FashionMNISTConfig)
