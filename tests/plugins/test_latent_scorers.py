"""Attribute scorers on hand-made images: ink area, slant from second moments, brightness, digit class."""

from __future__ import annotations

import pytest
import torch
from ganforge import AttributeScorer, DataError, get_plugin_manager
from ganforge_plugins.latent.scorers import (
    BrightnessScorer,
    HeightScorer,
    InkScorer,
    InkScorerConfig,
    MomentScorerConfig,
    SlantScorer,
    WidthScorer,
    moments,
)

from tests.conftest import SHARED_DATA

MANAGER = get_plugin_manager()


def canvas(n: int = 1, size: int = 28) -> torch.Tensor:
    return torch.full((n, 1, size, size), -1.0)


def bar(width: int, *, shear: float = 0.0, size: int = 28, length: int = 18) -> torch.Tensor:
    """A vertical stroke ``width`` pixels wide, sheared so that ``x = x0 + shear * y`` (``y`` up)."""
    img = canvas(1, size)
    top = (size - length) // 2
    for row in range(top, top + length):
        y_up = (size - 1 - row) - (size - 1) / 2
        x0 = round(size / 2 - width / 2 + shear * y_up)
        img[0, 0, row, x0:x0 + width] = 1.0
    return img


@pytest.mark.parametrize("name", ["ink", "slant", "width", "height", "brightness"])
def test_registered_scorers_build_from_default_config_and_score_one_column(name: str) -> None:
    comp = MANAGER.get("scorer", name)
    scorer = comp.factory(comp.config())
    assert isinstance(scorer, AttributeScorer)
    assert list(scorer.attributes) == [name]
    x = torch.rand(5, 1, 16, 16) * 2 - 1
    out = scorer.score(x)
    assert out.shape == (5, 1) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert scorer.score(x.expand(-1, 3, -1, -1)).shape == (5, 1)  # RGB too


def test_ink_area_grows_with_stroke_width() -> None:
    scorer = InkScorer(InkScorerConfig())
    scores = [float(scorer.score(bar(w))) for w in (1, 2, 4, 6)]
    assert scores == sorted(scores) and scores[0] < scores[-1]
    assert scores[1] == pytest.approx(2 * 18 / 28**2)  # exactly the stroke's area fraction
    half = canvas()
    half[..., :14] = 0.2  # intensity 0.6 > 0.5 on half the image
    assert float(scorer.score(half)) == pytest.approx(0.5)
    assert float(InkScorer(InkScorerConfig(threshold=0.7)).score(half)) == 0.0


def test_slant_has_the_sign_and_size_of_the_shear() -> None:
    scorer = SlantScorer(MomentScorerConfig())
    assert abs(float(scorer.score(bar(2)))) < 1e-6  # an upright stroke
    for shear in (-0.4, -0.2, 0.2, 0.4):
        s = float(scorer.score(bar(2, shear=shear)))
        assert s == pytest.approx(shear, abs=0.05), shear
    # mirroring left-right flips the sign
    img = bar(3, shear=0.3)
    assert float(scorer.score(img.flip(-1))) == pytest.approx(-float(scorer.score(img)), abs=1e-5)
    assert float(scorer.score(canvas())) == 0.0  # no ink: no slant, no NaN


def test_width_and_height_measure_a_rectangle_exactly_and_ignore_the_shear() -> None:
    width, height = WidthScorer(MomentScorerConfig()), HeightScorer(MomentScorerConfig())
    img = canvas()
    img[0, 0, 5:25, 10:17] = 1.0  # 7 wide, 20 high
    assert float(width.score(img)) == pytest.approx(7.0, abs=1e-4)
    assert float(height.score(img)) == pytest.approx(20.0, abs=1e-4)
    assert float(width.score(img.transpose(-1, -2))) == pytest.approx(20.0, abs=1e-4)  # turned a quarter
    for w in (1, 2, 4, 6):
        assert float(height.score(bar(w))) == pytest.approx(18.0, abs=1e-4)
        for shear in (-0.4, 0.3):
            # a sheared stroke keeps its width; rounding its rows to pixels adds a staircase of variance 1/12
            measured = float(width.score(bar(w, shear=shear)))
            assert w - 1e-4 <= measured <= (w * w + 1) ** 0.5 + 0.05, (w, shear, measured)
    # the unsheared horizontal spread would not: a shear of 0.4 over 18 rows spreads 2 pixels over ~9
    mu20, _, _ = moments(bar(2, shear=0.4))
    assert float((12 * (mu20 + 1 / 12)).sqrt()) > 4.0
    assert float(width.score(canvas())) == 1.0 and float(height.score(canvas())) == 1.0  # no ink, no NaN


def test_brightness_is_mean_intensity_with_luma_for_rgb() -> None:
    scorer = BrightnessScorer(MomentScorerConfig())
    assert float(scorer.score(canvas())) == 0.0
    assert float(scorer.score(torch.ones(1, 1, 8, 8))) == 1.0
    assert float(scorer.score(torch.zeros(1, 1, 8, 8))) == pytest.approx(0.5)
    red = torch.full((1, 3, 4, 4), -1.0)
    red[:, 0] = 1.0  # luma = 0.299 * 1 + (0.587 + 0.114) * -1 -> intensity (luma + 1) / 2 = 0.299
    assert float(scorer.score(red)) == pytest.approx(0.299, abs=1e-6)
    assert float(scorer.score(bar(4))) > float(scorer.score(bar(2)))


def test_scorers_refuse_non_images() -> None:
    with pytest.raises(DataError, match=r"ink: expected images \[N, 1 or 3, H, W\].*\[4, 16\]"):
        InkScorer(InkScorerConfig()).score(torch.zeros(4, 16))
    with pytest.raises(DataError, match=r"slant: .*\[2, 2, 8, 8\]"):
        SlantScorer(MomentScorerConfig()).score(torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match="threshold"):
        InkScorerConfig(threshold=1.5)


def test_mnist_digit_scorer_reads_real_digits() -> None:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("real MNIST is not available")
    data_comp = MANAGER.get("dataset", "mnist")
    data = data_comp.factory(data_comp.config(root=str(SHARED_DATA / "mnist"), split="test", limit=200))
    comp = MANAGER.get("scorer", "mnist-digit")
    scorer = comp.factory(comp.config())
    assert list(scorer.attributes) == [str(i) for i in range(10)]
    probs = scorer.score(data.images)
    assert probs.shape == (200, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(200))
    assert float((probs.argmax(1) == data.labels).float().mean()) > 0.95


def test_thickness_is_the_ink_area_under_the_issues_name() -> None:
    comp = MANAGER.get("scorer", "thickness")
    scorer = comp.factory(comp.config())
    assert tuple(scorer.attributes) == ("thickness",)
    x = torch.cat([bar(2), bar(5)])  # 18 rows x 2 and x 5 pixels of 28 x 28
    torch.testing.assert_close(scorer.score(x)[:, 0], torch.tensor([36 / 784, 90 / 784]))
    torch.testing.assert_close(scorer.score(x), InkScorer(InkScorerConfig()).score(x))
