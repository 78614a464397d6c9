"""scikit-learn's bundled handwritten digits: 1,797 real 8x8 grayscale images of 0-9.

The UCI "Optical Recognition of Handwritten Digits" set (Alpaydin & Kaynak, 1998), shipped inside
scikit-learn, so ganforge's default run needs no download. Images are resized from 8x8 to
``resolution`` (bilinear) and scaled to ``[-1, 1]``; labels are kept.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from ganforge import DataSpec, hookimpl, power_of_two


@attrs.frozen(kw_only=True)
class DigitsConfig:
    resolution: int = attrs.field(default=16, validator=power_of_two(4, 256))


@attrs.define
class Digits:
    """scikit-learn's 1,797 real 8x8 handwritten digits, labelled 0-9."""

    spec: DataSpec
    images: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def from_config(cls, config: DigitsConfig) -> Digits:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        pixels = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [N, 1, 8, 8]
        if config.resolution != 8:
            pixels = F.interpolate(
                pixels, size=(config.resolution,) * 2, mode="bilinear", align_corners=False,
                antialias=config.resolution < 8,
            ).clamp_(0.0, 1.0)
        spec = DataSpec(shape=(1, config.resolution, config.resolution), num_classes=10,
                        class_names=tuple(str(i) for i in range(10)))
        labels = torch.as_tensor(bunch.target, dtype=torch.long)
        return cls(spec=spec, images=pixels * 2.0 - 1.0, labels=labels)


@hookimpl
def ganforge_register_datasets(register):
    register("digits", Digits.from_config, DigitsConfig)
