"""The image pool of past fakes (Shrivastava et al. 2017, arXiv:1612.07828; CycleGAN, section 4)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor


class ImagePool:
    """A buffer of past generated images, so that a discriminator is also shown older fakes and the
    generator cannot win by oscillating.

    Until the pool holds ``size`` images every image is stored and returned as is. Once it is full,
    each incoming image is, with probability 0.5, swapped with a uniformly chosen stored one (the
    stored one is returned and the new one kept), and otherwise returned unchanged. ``size = 0``
    disables the pool. Randomness comes from ``generator`` (a CPU generator: no device sync) so that
    a seed reproduces it.
    """

    def __init__(self, size: int = 50, *, generator: torch.Generator | None = None) -> None:
        if size < 0:
            raise ValueError(f"image pool: size must be >= 0, got {size}")
        self.size = size
        self.generator = generator
        self.images: list[Tensor] = []

    def query(self, images: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """``[N, C, H, W]`` fakes (detached) -> ``[N, C, H, W]`` a mix of these and past ones."""
        if self.size == 0:
            return images.detach()
        rng = generator or self.generator
        if self.images and self.images[0].device != images.device:  # restored from a checkpoint on the CPU
            self.images = [x.to(images.device) for x in self.images]
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
                continue
            if torch.rand((), generator=rng).item() < 0.5:
                i = int(torch.randint(self.size, (), generator=rng))
                out.append(self.images[i])
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Tensor]:
        return {"images": torch.stack(self.images).cpu() if self.images else torch.empty(0)}

    def load_state_dict(self, state: Mapping[str, Tensor], device: torch.device | str = "cpu") -> None:
        self.images = [x.to(device) for x in state["images"]] if state["images"].numel() else []
