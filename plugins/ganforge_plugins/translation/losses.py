"""The non-adversarial terms of image-to-image translation and the image pool, as small pure
functions (the constant-then-linear learning-rate schedule is :func:`ganforge.linear_decay`).

- pix2pix (Isola et al. 2017, arXiv:1611.07004, eq. 3): ``L_L1(G) = E ||y - G(x)||_1``.
- CycleGAN (Zhu et al. 2017, arXiv:1703.10593, eq. 2): ``L_cyc = E ||F(G(x)) - x||_1 + E ||G(F(y)) - y||_1``;
  identity (section 5.2, from Taigman et al. 2017): ``L_idt = E ||G(y) - y||_1 + E ||F(x) - x||_1``;
  the pool of 50 past fakes (section 4, from Shrivastava et al. 2017, arXiv:1612.07828).
- StarGAN (Choi et al. 2018, arXiv:1711.09020, eqs. 2-4): domain classification
  ``L_cls = E[-log D_cls(c | x)]`` (real images with their own domain for D, fakes with the target
  domain for G) and reconstruction ``L_rec = E ||x - G(G(x, c), c')||_1``.

``||.||_1`` is the mean absolute difference per pixel, as the papers' code computes it (``nn.L1Loss``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def l1(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute difference: ``E |a - b|``."""
    if a.shape != b.shape:
        raise ValueError(f"l1: shapes differ: {tuple(a.shape)} and {tuple(b.shape)}")
    return (a - b).abs().mean()


def cycle_loss(x: Tensor, x_cycled: Tensor, y: Tensor | None = None, y_cycled: Tensor | None = None) -> Tensor:
    """CycleGAN's ``E|F(G(x)) - x| + E|G(F(y)) - y|`` (the second term only when ``y`` is given)."""
    loss = l1(x_cycled, x)
    if y is not None and y_cycled is not None:
        loss = loss + l1(y_cycled, y)
    return loss


def identity_loss(y: Tensor, g_of_y: Tensor, x: Tensor | None = None, f_of_x: Tensor | None = None) -> Tensor:
    """CycleGAN's identity term ``E|G(y) - y| + E|F(x) - x|``: a generator fed its own target domain
    should change nothing (only defined when both domains have the same channels)."""
    loss = l1(g_of_y, y)
    if x is not None and f_of_x is not None:
        loss = loss + l1(f_of_x, x)
    return loss


def domain_classification_loss(class_logits: Tensor, domains: Tensor) -> Tensor:
    """StarGAN's ``L_cls = E[-log D_cls(c | x)]``: cross entropy of ``[N, K]`` logits against ``[N]`` domains."""
    return F.cross_entropy(class_logits, domains)


def reconstruction_loss(x: Tensor, reconstructed: Tensor) -> Tensor:
    """StarGAN's ``L_rec = E||x - G(G(x, c), c')||_1``."""
    return l1(reconstructed, x)


class ImagePool:
    """A buffer of past generated images (Shrivastava et al. 2017), so that a discriminator is also
    shown older fakes and the generator cannot win by oscillating.

    Until the pool holds ``size`` images every image is stored and returned as is. Once it is full,
    each incoming image is, with probability 0.5, swapped with a uniformly chosen stored one (the
    stored one is returned and the new one kept), and otherwise returned unchanged. ``size = 0``
    disables the pool. Randomness comes from ``generator`` so that a seed reproduces it.
    """

    def __init__(self, size: int = 50, *, generator: torch.Generator | None = None) -> None:
        if size < 0:
            raise ValueError(f"image pool: size must be >= 0, got {size}")
        self.size = size
        self.generator = generator
        self.images: list[Tensor] = []

    def query(self, images: Tensor) -> Tensor:
        """``[N, C, H, W]`` fakes (detached) -> ``[N, C, H, W]`` a mix of these and past ones."""
        if self.size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
                continue
            swap = torch.rand((), generator=self.generator).item() < 0.5
            if swap:
                i = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[i])
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Tensor]:
        empty = torch.empty(0)
        return {"images": torch.stack(self.images).cpu() if self.images else empty}

    def load_state_dict(self, state: dict[str, Tensor], device: torch.device | str = "cpu") -> None:
        self.images = [x.to(device) for x in state["images"]] if state["images"].numel() else []
