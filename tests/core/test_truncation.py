"""Multi-modal truncation's two pieces: k-means on samples of W and the nearest centre of each w."""

from __future__ import annotations

import pytest
import torch
from ganforge import ConfigError, kmeans, nearest_mode


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def three_blobs(n: int = 900) -> tuple[torch.Tensor, torch.Tensor]:
    truth = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 8.0]])
    return truth[torch.arange(n) % 3] + 0.3 * torch.randn(n, 2, generator=rng(1)), truth


def test_kmeans_finds_planted_modes_and_refuses_bad_k() -> None:
    x, truth = three_blobs()
    found = kmeans(x, 3, generator_rng=rng(0))
    matched = torch.cdist(truth, found).min(1).values
    assert float(matched.max()) < 0.1, found  # each true mode has a centre within 0.1
    torch.testing.assert_close(kmeans(x, 3, generator_rng=rng(0)), found)  # seeded: the same centres
    torch.testing.assert_close(kmeans(x, 1, generator_rng=rng(5)), x.mean(0, keepdim=True))
    # one Lloyd step from the chosen points is not the answer: the loop moves the centres
    assert float(torch.cdist(truth, kmeans(x, 3, generator_rng=rng(0), iterations=0)).min(1).values.max()) > 0.1
    for k in (0, 901):
        with pytest.raises(ConfigError, match=rf"modes: expected 1 <= k <= 900 .*got {k}"):
            kmeans(x, k, generator_rng=rng(0))


def test_nearest_mode_picks_each_ws_own_centre_by_its_first_style() -> None:
    x, truth = three_blobs()
    torch.testing.assert_close(nearest_mode(x, truth), truth[torch.arange(len(x)) % 3])
    ws = torch.stack([x, -x], 1)  # W+: the second style points elsewhere, the first decides
    torch.testing.assert_close(nearest_mode(ws, truth), truth[torch.arange(len(x)) % 3])
    assert nearest_mode(x.double(), truth).dtype == torch.float64  # in the dtype of the w it serves
