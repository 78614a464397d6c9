"""Attribute scorers: measured attributes of an image and a digit classifier, for editors to find and
check semantic directions (InterFaceGAN, Shen et al. 2020, arXiv:2005.09635, scores samples with such
predictors before fitting its SVM).

Images are ``[N, C, H, W]`` in ``[-1, 1]``; the ink intensity is ``m = (l + 1) / 2`` of the luma ``l``
(ITU-R BT.601 weights for three channels, the channel itself for one), so ink is white on black as in
MNIST. With pixel coordinates ``x`` to the right and ``y`` upwards:

- ``ink`` (also registered as ``thickness``): stroke thickness as ink area, the fraction of pixels
  with ``m > threshold``;
- ``slant``: from the second moments of ``m`` (the deskewing shear of MNIST preprocessing),
  ``slant = mu_11 / mu_02`` with ``mu_pq = sum m (x - x_bar)^p (y - y_bar)^q``: a stroke
  ``x = x0 + s y`` has slant ``s`` (> 0 leaning right);
- ``width`` and ``height``: the size of the digit from the same moments, with each pixel taken as a
  unit square of uniform ink (which adds ``1/12`` to ``mu_20`` and ``mu_02``): ``height = sqrt(12 mu_02)``
  and, after removing the shear, ``width = sqrt(12 (mu_20 - mu_11^2 / mu_02))``, so that an upright
  ``W x H`` rectangle measures exactly ``W`` by ``H`` and a sheared stroke keeps its width. They follow
  Morpho-MNIST (Castro et al. 2019, arXiv:1809.10780), whose factors of a handwritten digit are its
  thickness, slant, width and height (there measured on the deskewed bounding box);
- ``brightness``: mean of ``m`` over the image;
- ``mnist-digit``: the ten class probabilities of ganforge's MNIST domain classifier
  (:mod:`ganforge_plugins.metrics.classifier`).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
from attrs import validators as v
from ganforge import DataError, hookimpl
from torch import Tensor

LUMA = (0.299, 0.587, 0.114)


def check_images(x: Tensor, who: str) -> Tensor:
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"{who}: expected images [N, 1 or 3, H, W] in [-1, 1], got shape {list(x.shape)}")
    return x.float()


def intensity(x: Tensor) -> Tensor:
    """Ink intensity ``[N, H, W]`` in ``[0, 1]`` of images in ``[-1, 1]``."""
    if x.shape[1] == 3:
        w = torch.tensor(LUMA, dtype=x.dtype, device=x.device)
        x = (x * w[None, :, None, None]).sum(1, keepdim=True)
    return ((x[:, 0] + 1) / 2).clamp(0.0, 1.0)


def ink_area(x: Tensor, threshold: float = 0.5) -> Tensor:
    """``[N]`` fraction of pixels with ink intensity above ``threshold``."""
    return (intensity(x) > threshold).float().mean(dim=(1, 2))


def brightness(x: Tensor) -> Tensor:
    """``[N]`` mean ink intensity."""
    return intensity(x).mean(dim=(1, 2))


def moments(x: Tensor, eps: float = 1e-8) -> tuple[Tensor, Tensor, Tensor]:
    """Central second moments ``(mu_20, mu_02, mu_11)`` of the ink (``x`` right, ``y`` up), normalised by its mass."""
    m = intensity(x)  # [N, H, W]
    h, w = m.shape[1:]
    ys = -torch.arange(h, dtype=m.dtype, device=m.device)[:, None].expand(h, w)  # upwards
    xs = torch.arange(w, dtype=m.dtype, device=m.device)[None, :].expand(h, w)
    mass = m.sum(dim=(1, 2)).clamp_min(eps)
    xbar = (m * xs).sum(dim=(1, 2)) / mass
    ybar = (m * ys).sum(dim=(1, 2)) / mass
    dx, dy = xs - xbar[:, None, None], ys - ybar[:, None, None]
    mu20 = (m * dx * dx).sum(dim=(1, 2)) / mass
    mu02 = (m * dy * dy).sum(dim=(1, 2)) / mass
    mu11 = (m * dx * dy).sum(dim=(1, 2)) / mass
    return mu20, mu02, mu11


def slant(x: Tensor, eps: float = 1e-8) -> Tensor:
    """``[N]`` shear ``mu_11 / mu_02`` (0 for an empty image)."""
    _, mu02, mu11 = moments(x, eps)
    return mu11 / mu02.clamp_min(eps)


def extent(x: Tensor) -> tuple[Tensor, Tensor]:
    """``[N]`` deskewed width and height in pixels: the sides of the uniform rectangle with the ink's
    second moments (a pixel is a unit square, whose own variance ``1/12`` is added; an empty image is 1 x 1)."""
    mu20, mu02, mu11 = moments(x)
    mu20, mu02 = mu20 + 1 / 12, mu02 + 1 / 12
    residual = (mu20 - mu11 * mu11 / mu02).clamp_min(0.0)  # x's variance left once the shear is removed
    return (12 * residual).sqrt(), (12 * mu02).sqrt()


@attrs.frozen(kw_only=True)
class InkScorerConfig:
    threshold: float = attrs.field(default=0.5, validator=[v.ge(0.0), v.lt(1.0)])  # ink: intensity above it


@attrs.frozen(kw_only=True)
class MomentScorerConfig:
    pass


class InkScorer:
    """Stroke thickness as ink area."""

    attributes = ("ink",)

    def __init__(self, config: InkScorerConfig) -> None:
        self.threshold = config.threshold

    @torch.no_grad()
    def score(self, x: Tensor) -> Tensor:
        return ink_area(check_images(x, "ink"), self.threshold)[:, None]


class ThicknessScorer(InkScorer):
    """Stroke thickness as ink area, under the issue's name for it (``--attribute thickness``)."""

    attributes = ("thickness",)

    @torch.no_grad()
    def score(self, x: Tensor) -> Tensor:
        return ink_area(check_images(x, "thickness"), self.threshold)[:, None]


class _MeasureScorer:
    """One attribute measured on the images by a function of them (``measure``, ``[N, ...] -> [N]``)."""

    attributes: tuple[str, ...]
    measure: Callable[[Tensor], Tensor]

    def __init__(self, config: MomentScorerConfig) -> None:
        pass

    @torch.no_grad()
    def score(self, x: Tensor) -> Tensor:
        return type(self).measure(check_images(x, self.attributes[0]))[:, None]


class SlantScorer(_MeasureScorer):
    """Slant (shear) from the second moments of the ink."""

    attributes = ("slant",)
    measure = staticmethod(slant)


class WidthScorer(_MeasureScorer):
    """Width of the deskewed digit in pixels (see :func:`extent`)."""

    attributes = ("width",)
    measure = staticmethod(lambda x: extent(x)[0])


class HeightScorer(_MeasureScorer):
    """Height of the digit in pixels (see :func:`extent`)."""

    attributes = ("height",)
    measure = staticmethod(lambda x: extent(x)[1])


class BrightnessScorer(_MeasureScorer):
    """Mean ink intensity."""

    attributes = ("brightness",)
    measure = staticmethod(brightness)


class DigitScorer:
    """Class probabilities ``[N, 10]`` of ganforge's MNIST domain classifier (attributes ``"0"`` .. ``"9"``)."""

    def __init__(self, config: object) -> None:
        from ganforge_plugins.metrics.classifier import ClassifierFeatures

        self.classifier = ClassifierFeatures(config, dataset="mnist")  # type: ignore[arg-type]
        self.attributes = tuple(self.classifier.class_names)

    def score(self, x: Tensor) -> Tensor:
        return self.classifier.probabilities(check_images(x, "mnist-digit"))


def _digit_config() -> type:
    from ganforge_plugins.metrics.classifier import ClassifierFeaturesConfig

    return ClassifierFeaturesConfig


@hookimpl
def ganforge_register_scorers(register):
    register("ink", InkScorer, InkScorerConfig)
    register("thickness", ThicknessScorer, InkScorerConfig)
    register("slant", SlantScorer, MomentScorerConfig)
    register("width", WidthScorer, MomentScorerConfig)
    register("height", HeightScorer, MomentScorerConfig)
    register("brightness", BrightnessScorer, MomentScorerConfig)
    register("mnist-digit", DigitScorer, _digit_config())
