"""Tiny generators with closed-form latent structure for the latent-space tests."""

from __future__ import annotations

import torch
from ganforge import LatentSpace
from torch import Tensor, nn


class LinearStyleToy(nn.Module):
    """A style generator whose parts are linear: ``w = z @ M`` (``M = diag(scales) R``, ``R`` a random
    rotation) and ``image = 0.5 * tanh-free (mean of ws) @ A`` reshaped to ``1 x 8 x 8``, with ``A``
    small so that pixels stay inside ``[-1, 1]``. Brightness is then exactly linear in ``w`` and ``z``."""

    def __init__(self, dim: int = 12, num_ws: int = 4, *, scales: list[float] | None = None, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        scales = scales or [1.0] * dim
        rot, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
        self.register_buffer("rotation", rot.T.contiguous())  # rows: the planted axes
        self.register_buffer("m", torch.diag(torch.tensor(scales)) @ self.rotation)
        self.register_buffer("a", torch.randn(dim, 64, generator=g) * 0.02)
        self.register_buffer("w_avg", torch.zeros(dim))
        self.num_ws, self.num_classes = num_ws, None
        self.layer_ranges = {"coarse": range(0, 2), "middle": range(2, 3), "fine": range(3, num_ws)}
        self.latent_spaces = (LatentSpace(name="z", shape=(dim,)), LatentSpace(name="w", shape=(dim,)),
                              LatentSpace(name="w+", shape=(num_ws, dim)))

    def mapping(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return z @ self.m

    def synthesis(self, ws: Tensor) -> Tensor:
        return (ws.mean(1) @ self.a).reshape(-1, 1, 8, 8)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        w = self.mapping(z)
        return self.synthesis(w[:, None].expand(-1, self.num_ws, -1))

    def brightness_normal_w(self) -> Tensor:
        """Unit normal in W of the brightness level sets: brightness = 0.5 + w . mean_p(A[:, p]) / 2."""
        u = self.a.mean(1)
        return u / u.norm()

    def brightness_normal_z(self) -> Tensor:
        u = self.m @ self.a.mean(1)
        return u / u.norm()


class LeftHalfBrightness:
    """Mean ink intensity of the left half of the image (a second, correlated linear attribute)."""

    attributes = ("left",)

    def score(self, x: Tensor) -> Tensor:
        return ((x[:, 0, :, : x.shape[-1] // 2] + 1) / 2).mean(dim=(1, 2))[:, None]


def cos(a: Tensor, b: Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.reshape(1, -1).double(), b.reshape(1, -1).double()))
