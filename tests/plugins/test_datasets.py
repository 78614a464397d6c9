"""Datasets read real data from local files, and say clearly what is wrong when they cannot."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from ganforge import DataError
from ganforge_plugins.datasets.digits import Digits, DigitsConfig
from ganforge_plugins.datasets.idx import FashionMNISTConfig, MNISTConfig, fashion_mnist, mnist
from ganforge_plugins.datasets.image_folder import ImageFolder, ImageFolderConfig
from PIL import Image


def test_digits_are_scikit_learns_real_digits() -> None:
    from sklearn.datasets import load_digits

    native = Digits.from_config(DigitsConfig(resolution=8))
    bunch = load_digits()
    assert native.images.shape == (1797, 1, 8, 8)
    assert torch.allclose((native.images[:, 0] + 1) / 2 * 16, torch.as_tensor(bunch.images, dtype=torch.float32))
    assert torch.equal(native.labels, torch.as_tensor(bunch.target))
    big = Digits.from_config(DigitsConfig(resolution=32))
    assert big.images.shape == (1797, 1, 32, 32) and big.spec.num_classes == 10
    # resizing keeps the picture: shrunk back, every image correlates with its native self
    down = torch.nn.functional.avg_pool2d(big.images, 4).flatten(1)
    a, b = down - down.mean(1, keepdim=True), native.images.flatten(1) - native.images.flatten(1).mean(1, keepdim=True)
    correlation = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    assert correlation.min() > 0.9


def test_mnist_reads_the_real_files(mnist_root: Path) -> None:
    train = mnist(MNISTConfig(root=str(mnist_root)))
    test = mnist(MNISTConfig(root=str(mnist_root), split="test", resolution=32))
    assert len(train.images) == 60000 and len(test.images) == 10000
    assert train.images.shape[1:] == (1, 32, 32)
    pixels = (train.images[:, :, 2:30, 2:30] + 1) / 2  # the 28x28 digit, padded to 32x32
    assert abs(pixels.mean().item() - 0.1307) < 1e-3 and abs(pixels.std().item() - 0.3081) < 1e-3  # README's values
    assert (train.images[:, :, :2] == -1).all()  # the padding is background
    assert torch.bincount(train.labels).tolist()[:3] == [5923, 6742, 5958]


def test_uncompressed_idx_files_are_read_too(mnist_root: Path, tmp_path: Path) -> None:
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(mnist_root / f"{stem}.gz") as src, open(tmp_path / stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    digest = hashlib.md5((tmp_path / "t10k-images-idx3-ubyte").read_bytes()).hexdigest()
    assert digest == "2646ac647ad5339dbf082846283269ea"
    raw = mnist(MNISTConfig(root=str(tmp_path), split="test", resolution=16, fit="resize"))
    gz = mnist(MNISTConfig(root=str(mnist_root), split="test", resolution=16, fit="resize"))
    assert raw.images.shape == (10000, 1, 16, 16) and torch.equal(raw.images, gz.images)


def test_fashion_mnist_reads_the_real_files() -> None:
    config = FashionMNISTConfig(split="test", limit=500)
    if not Path(config.root).is_dir():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    data = fashion_mnist(config)
    assert data.images.shape == (500, 1, 32, 32) and data.spec.class_names[0] == "t-shirt"
    assert set(data.labels.tolist()) == set(range(10))


def test_missing_and_broken_idx_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.root: directory '.*/nope' does not exist"):
        mnist(MNISTConfig(root=str(tmp_path / "nope")))
    with pytest.raises(DataError, match=r"neither train-images-idx3-ubyte\.gz nor train-images-idx3-ubyte"):
        mnist(MNISTConfig(root=str(tmp_path)))
    header = np.array([0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28], dtype=np.uint8).tobytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header + bytes(100))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 10]) + bytes(10))
    with pytest.raises(DataError, match="is truncated: header says"):
        mnist(MNISTConfig(root=str(tmp_path)))


def write_images(folder: Path, n: int, size: tuple[int, int] = (24, 20),
                 colour: tuple[int, int, int] = (255, 0, 0)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, colour).save(folder / f"{i}.png")


def test_image_folder_flat_and_with_classes(tmp_path: Path) -> None:
    write_images(tmp_path / "flat", 3)
    flat = ImageFolder.from_config(ImageFolderConfig(root=str(tmp_path / "flat"), resolution=16))
    assert flat.images.shape == (3, 3, 16, 16) and flat.labels is None and flat.spec.num_classes is None
    assert torch.allclose(flat.images[0, :, 8, 8], torch.tensor([1.0, -1.0, -1.0]))  # red, in [-1, 1]

    write_images(tmp_path / "classes" / "cats", 2, colour=(0, 0, 0))
    write_images(tmp_path / "classes" / "dogs", 3, colour=(255, 255, 255))
    labelled = ImageFolder.from_config(ImageFolderConfig(root=str(tmp_path / "classes"), resolution=8, channels=1))
    assert labelled.spec.class_names == ("cats", "dogs") and labelled.labels.tolist() == [0, 0, 1, 1, 1]
    assert labelled.images.shape == (5, 1, 8, 8)
    assert torch.allclose(labelled.images[:2], torch.tensor(-1.0))
    assert torch.allclose(labelled.images[2:], torch.tensor(1.0))


def test_image_folder_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no images"):
        ImageFolder.from_config(ImageFolderConfig(root=str(tmp_path)))
    write_images(tmp_path / "a", 1)
    write_images(tmp_path, 1)
    with pytest.raises(DataError, match=r"both class sub-folders .* and loose images"):
        ImageFolder.from_config(ImageFolderConfig(root=str(tmp_path)))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image .*x\.png"):
        ImageFolder.from_config(ImageFolderConfig(root=str(broken)))
