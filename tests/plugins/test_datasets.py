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
    with pytest.raises(DataError, match=r"image .*x\.png cannot be read"):
        ImageFolder.from_config(ImageFolderConfig(root=str(broken)))


# -- bounded, exact image reading (run-safety issue) -------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` pixels in its header and holds none: a decompression bomb's
    first bytes."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


def test_a_16_bit_grey_png_keeps_its_levels(tmp_path: Path) -> None:
    levels = np.array([[0, 16384, 32768, 65535]] * 4, dtype=np.uint16)
    Image.fromarray(levels).save(tmp_path / "deep.png")  # 16-bit greyscale
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")  # the file really is 16-bit
    data = ImageFolder.from_config(ImageFolderConfig(root=str(tmp_path), resolution=4, channels=1))
    got = (data.images[0, 0, 0] + 1) / 2  # back to [0, 1]
    torch.testing.assert_close(got, torch.tensor([0.0, 16384 / 65535, 32768 / 65535, 1.0]), atol=1e-6, rtol=0)
    rgb = ImageFolder.from_config(ImageFolderConfig(root=str(tmp_path), resolution=4, channels=3))
    assert torch.equal(rgb.images[0, 0], rgb.images[0, 2]) and abs(float(rgb.images[0, 1, 0, 2])) < 1e-4  # mid-grey


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(_png_header(100_000, 100_000))  # Pillow's own check refuses it at open
    with pytest.raises(DataError, match=r"bomb\.png: more than the 67,108,864 pixels ganforge decodes"):
        ImageFolder.from_config(ImageFolderConfig(root=str(tmp_path)))
    (tmp_path / "bomb.png").write_bytes(_png_header(12_000, 12_000))  # below Pillow's, above ganforge's
    with pytest.raises(DataError, match=r"bomb\.png: 12000x12000 is 144,000,000 pixels, more than the 67,108,864"):
        ImageFolder.from_config(ImageFolderConfig(root=str(tmp_path)))


def test_the_pixel_cap_applies_to_real_images_and_can_be_set(tmp_path: Path) -> None:
    write_images(tmp_path, 1, size=(40, 30))
    with pytest.raises(DataError, match=r"40x30 is 1,200 pixels, more than the 1,000 pixels"):
        ImageFolder.from_config(ImageFolderConfig(root=str(tmp_path), resolution=16, max_pixels=1000))
    assert ImageFolder.from_config(ImageFolderConfig(root=str(tmp_path), resolution=16)).images.shape == (1, 3, 16, 16)


def test_a_truncated_idx_header_and_out_of_range_labels_are_data_errors(tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3, 0, 0]))  # 6 bytes
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 3, 1]))
    with pytest.raises(DataError, match="is truncated: its header needs 16 bytes for 3 dimensions, the file has 6"):
        mnist(MNISTConfig(root=str(tmp_path)))
    header = np.array([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28], dtype=np.uint8).tobytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header + bytes(2 * 28 * 28))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 3, 12]))
    with pytest.raises(DataError, match=r"label 12 at index 1 is out of range; expected 0\.\.9"):
        mnist(MNISTConfig(root=str(tmp_path)))
