"""Translation data: the ground-truth tasks built from real MNIST with kornia, and the folder layouts
with their errors (unpaired folders for pix2pix, mismatched names, mixed sizes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ganforge import DataError
from ganforge_plugins.translation.data import (
    STYLES,
    TranslationDataConfig,
    bold,
    italic,
    load_mnist_digits,
    load_translation_data,
    sobel_edges,
    thin,
    to_canvas,
)
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_thread")


def ink(x: torch.Tensor) -> float:
    """Mean intensity in [0, 1] of images in [-1, 1]."""
    return float((x + 1).mean() / 2)


def test_edges2mnist_pairs_the_sobel_edges_of_a_digit_with_the_digit(mnist_root: Path) -> None:
    data = load_translation_data(TranslationDataConfig(name="edges2mnist", root=str(mnist_root), split="test",
                                                       limit=64))
    digits = load_mnist_digits(mnist_root, "test", 64)
    assert data.a.shape == data.b.shape == (64, 1, 32, 32)
    assert torch.allclose(data.b, to_canvas(digits, 32))
    assert torch.allclose(data.a, to_canvas(sobel_edges(digits), 32))
    assert data.a.amax(dim=(1, 2, 3)).eq(1.0).all()  # normalised per image
    # edges sit on the strokes' borders: within one pixel of ink, and not on the stroke cores
    b_ink = (data.b > 0).float()
    near_ink = torch.nn.functional.max_pool2d(b_ink, 3, 1, 1) > 0
    strong = data.a > 0.0
    assert (strong & near_ink).sum() / strong.sum() > 0.99
    canny = load_translation_data(TranslationDataConfig(name="edges2mnist", root=str(mnist_root), split="test",
                                                        limit=8, edges="canny"))
    assert set(canny.a.unique().tolist()) == {-1.0, 1.0}  # binary edge maps


def test_mnist_thin2bold_takes_the_domains_from_disjoint_halves_with_the_hidden_truth(mnist_root: Path) -> None:
    data = load_translation_data(TranslationDataConfig(name="mnist-thin2bold", root=str(mnist_root), limit=200))
    digits = load_mnist_digits(mnist_root, "train", 200)
    assert data.x.shape == data.y.shape == (100, 1, 32, 32)
    assert torch.allclose(data.x, to_canvas(thin(digits[:100]), 32))
    assert torch.allclose(data.y, to_canvas(bold(digits[100:]), 32))
    assert torch.allclose(data.x_truth, to_canvas(bold(digits[:100]), 32))  # G(x) should be x's own digit, bold
    assert torch.allclose(data.y_truth, to_canvas(thin(digits[100:]), 32))
    plain = ink(to_canvas(digits, 32))
    assert ink(data.x) < 0.6 * plain and ink(data.y) > 1.4 * plain  # eroded thinner, dilated bolder
    assert (data.x.amax(dim=(1, 2, 3)) > 0).all()  # erosion erases no digit


def test_mnist_styles_shows_each_training_digit_in_one_domain_and_tests_every_pair(mnist_root: Path) -> None:
    train = load_translation_data(TranslationDataConfig(name="mnist-styles", root=str(mnist_root), limit=400))
    digits = load_mnist_digits(mnist_root, "train", 400)
    assert train.domain_names == STYLES == ("plain", "bold", "thin", "italic") and train.truth is None
    counts = torch.bincount(train.domains, minlength=4)
    assert counts.min() > 70  # about 100 each
    for d, fn in enumerate((lambda x: x, bold, thin, italic)):
        chosen = train.domains == d
        assert torch.allclose(train.images[chosen], to_canvas(fn(digits[chosen]), 32), atol=1e-6)
    test = load_translation_data(TranslationDataConfig(name="mnist-styles", root=str(mnist_root), split="test",
                                                       limit=50))
    assert test.truth.shape == (50, 4, 1, 32, 32)
    test_digits = to_canvas(load_mnist_digits(mnist_root, "test", 50), 32)
    assert torch.equal(test.truth[:, 0], test_digits)
    inks = [ink(test.truth[:, k]) for k in range(4)]
    assert inks[2] < inks[0] < inks[1]  # thin < plain < bold
    # italic leans right: the ink of the top rows moves right relative to the bottom rows
    cols = torch.arange(32.0)

    def lean(x: torch.Tensor) -> float:
        w = (x + 1) / 2
        top, bottom = w[..., 4:14, :], w[..., 18:28, :]
        centre = lambda part: ((part.sum(-2) * cols).sum(-1) / part.sum((-2, -1)).clamp(min=1e-6))  # noqa: E731
        return float((centre(top) - centre(bottom)).mean())

    assert lean(test.truth[:, 3]) - lean(test.truth[:, 0]) > 3.0  # 0.3 x about 14 rows apart


def _save(path: Path, size: tuple[int, int], value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, 0)).save(path)


def test_aligned_folders_pair_by_name(tmp_path: Path) -> None:
    for name, value in (("b", 10), ("a", 200)):
        _save(tmp_path / "A" / f"{name}.png", (16, 16), value)
        _save(tmp_path / "B" / f"{name}.jpg", (16, 16), 255 - value)
    data = load_translation_data(TranslationDataConfig(name="aligned", root=str(tmp_path), resolution=16))
    assert data.names == ("a", "b") and data.a.shape == data.b.shape == (2, 3, 16, 16)
    assert data.a[0, 0, 0, 0].item() == pytest.approx(200 / 255 * 2 - 1, abs=1e-6)
    assert data.b[0, 0, 0, 0].item() == pytest.approx(55 / 255 * 2 - 1, abs=0.03)  # jpeg
    assert data.b[1, 0, 0, 0].item() == pytest.approx(245 / 255 * 2 - 1, abs=0.03)


def test_side_by_side_ab_images_are_split_in_halves(tmp_path: Path) -> None:
    image = Image.new("L", (32, 16), 0)
    image.paste(255, (16, 0, 32, 16))  # A black, B white
    image.save(tmp_path / "x.png")
    data = load_translation_data(TranslationDataConfig(name="aligned", root=str(tmp_path), resolution=16, channels=1))
    assert torch.equal(data.a, -torch.ones(1, 1, 16, 16)) and torch.equal(data.b, torch.ones(1, 1, 16, 16))
    (tmp_path / "y.png").unlink(missing_ok=True)
    Image.new("L", (16, 16)).save(tmp_path / "x.png")
    with pytest.raises(DataError, match=r"twice as wide as high; .*x.png is 16x16"):
        load_translation_data(TranslationDataConfig(name="aligned", root=str(tmp_path), resolution=16))


def test_mismatched_a_and_b_names_are_named(tmp_path: Path) -> None:
    _save(tmp_path / "A" / "cat.png", (16, 16), 0)
    _save(tmp_path / "A" / "dog.png", (16, 16), 0)
    _save(tmp_path / "B" / "cat.png", (16, 16), 0)
    _save(tmp_path / "B" / "cow.png", (16, 16), 0)
    with pytest.raises(DataError, match="same names; in A/ only: dog; in B/ only: cow"):
        load_translation_data(TranslationDataConfig(name="aligned", root=str(tmp_path)))


def test_images_of_different_sizes_are_named(tmp_path: Path) -> None:
    _save(tmp_path / "A" / "1.png", (16, 16), 0)
    _save(tmp_path / "A" / "2.png", (16, 20), 0)
    _save(tmp_path / "B" / "1.png", (16, 16), 0)
    _save(tmp_path / "B" / "2.png", (16, 16), 0)
    with pytest.raises(DataError, match=r"different sizes: .*A/1.png is 16x16 but .*A/2.png is 16x20"):
        load_translation_data(TranslationDataConfig(name="aligned", root=str(tmp_path)))


def test_unpaired_folders_given_to_pix2pix_are_refused(tmp_path: Path) -> None:
    _save(tmp_path / "trainA" / "1.png", (16, 16), 0)
    _save(tmp_path / "trainB" / "2.png", (16, 16), 0)
    with pytest.raises(DataError, match=r"unpaired folders \(trainA/, trainB/\).*pix2pix needs aligned pairs"):
        load_translation_data(TranslationDataConfig(name="aligned", root=str(tmp_path)))
    data = load_translation_data(TranslationDataConfig(name="unaligned", root=str(tmp_path), resolution=8))
    assert data.x.shape == data.y.shape == (1, 3, 8, 8) and data.x_truth is None
    with pytest.raises(DataError, match="lacks testA/, testB/"):
        load_translation_data(TranslationDataConfig(name="unaligned", root=str(tmp_path), split="test"))


def test_domain_folders(tmp_path: Path) -> None:
    for domain, n in (("summer", 2), ("winter", 3)):
        for i in range(n):
            _save(tmp_path / domain / f"{i}.png", (8, 8), 100)
    data = load_translation_data(TranslationDataConfig(name="domains", root=str(tmp_path), resolution=8))
    assert data.domain_names == ("summer", "winter") and data.domains.tolist() == [0, 0, 1, 1, 1]
    _save(tmp_path / "one" / "summer" / "0.png", (8, 8), 0)
    with pytest.raises(DataError, match="one sub-folder per domain, at least 2; found summer"):
        load_translation_data(TranslationDataConfig(name="domains", root=str(tmp_path / "one"), resolution=8))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="'name' must be in"):
        TranslationDataConfig(name="edges2cats")
    with pytest.raises(DataError, match="does not exist"):
        load_translation_data(TranslationDataConfig(name="edges2mnist", root="/nonexistent/mnist"))


def test_cifar_colorize_pairs_the_luma_of_a_real_image_with_its_colours() -> None:
    tarball = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
    if not tarball.is_file():
        pytest.skip("the CIFAR-10 jpeg tarball is not available")
    data = load_translation_data(TranslationDataConfig(name="cifar-colorize", root=str(tarball.parent), split="test",
                                                       limit=20))
    assert data.a.shape == (20, 1, 32, 32) and data.b.shape == (20, 3, 32, 32)
    rgb = (data.b + 1) / 2
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]  # ITU-R 601
    assert torch.allclose((data.a[:, 0] + 1) / 2, luma, atol=1e-5)
    assert (rgb[:, 0] - rgb[:, 2]).abs().mean() > 0.02  # the targets are in colour
    with pytest.raises(DataError, match=r"cifar10-jpeg\.tar\.gz"):
        load_translation_data(TranslationDataConfig(name="cifar-colorize", root="/nonexistent"))
