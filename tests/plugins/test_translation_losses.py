"""The non-adversarial terms of translation against their formulas on hand-made tensors, the image
pool's statistics."""

from __future__ import annotations

import math

import pytest
import torch
from ganforge_plugins.translation.losses import (
    ImagePool,
    cycle_loss,
    domain_classification_loss,
    identity_loss,
    l1,
    reconstruction_loss,
)


def test_cycle_loss_is_the_sum_of_both_mean_absolute_errors() -> None:
    x = torch.tensor([[[[0.0, 1.0], [0.5, -1.0]]]])  # [1, 1, 2, 2]
    f_g_x = torch.tensor([[[[0.5, 1.0], [0.0, 0.0]]]])  # |diff| = 0.5, 0, 0.5, 1 -> mean 0.5
    y = torch.zeros(1, 1, 2, 2)
    g_f_y = torch.tensor([[[[0.2, -0.2], [0.0, 0.4]]]])  # mean 0.2
    assert cycle_loss(x, f_g_x).item() == pytest.approx(0.5)
    assert cycle_loss(x, f_g_x, y, g_f_y).item() == pytest.approx(0.7)
    assert cycle_loss(x, x, y, y).item() == 0.0


def test_identity_loss_is_the_mean_absolute_change_of_a_generator_on_its_own_domain() -> None:
    y = torch.tensor([[[[1.0, -1.0, 0.0]]]])
    g_y = torch.tensor([[[[0.0, -1.0, 0.3]]]])  # |diff| 1, 0, 0.3 -> 1.3 / 3
    x = torch.full((1, 1, 1, 3), 0.25)
    f_x = torch.full((1, 1, 1, 3), -0.25)  # 0.5
    assert identity_loss(y, g_y).item() == pytest.approx(1.3 / 3)
    assert identity_loss(y, g_y, x, f_x).item() == pytest.approx(1.3 / 3 + 0.5)


def test_reconstruction_and_l1() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    rec = torch.tensor([[1.5, 2.0], [1.0, 4.0]])  # 0.5 + 0 + 2 + 0 over 4
    assert reconstruction_loss(x, rec).item() == pytest.approx(0.625)
    with pytest.raises(ValueError, match=r"shapes differ: \(2, 2\) and \(4,\)"):
        l1(x, rec.flatten())


def test_domain_classification_loss_is_the_negative_log_probability_of_the_domain() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    domains = torch.tensor([0, 2])
    p0 = math.exp(2) / (math.exp(2) + 2)
    expected = (-math.log(p0) - math.log(1 / 3)) / 2
    assert domain_classification_loss(logits, domains).item() == pytest.approx(expected, rel=1e-6)


def test_image_pool_stores_until_full_then_swaps_with_probability_one_half() -> None:
    pool = ImagePool(50, generator=torch.Generator().manual_seed(0))
    first = torch.arange(50.0).view(50, 1, 1, 1).expand(50, 1, 2, 2)  # image i is filled with i
    assert torch.equal(pool.query(first), first)  # filling: every image returned as it is
    assert len(pool.images) == 50
    returned_past, seen = 0, set(range(50))
    n = 4000
    for t in range(n // 8):
        batch = (1000.0 + 8 * t + torch.arange(8.0)).view(8, 1, 1, 1).expand(8, 1, 2, 2)
        out = pool.query(batch)
        for new, got in zip(batch[:, 0, 0, 0].tolist(), out[:, 0, 0, 0].tolist(), strict=True):
            if got != new:
                assert got in seen  # an image that went into the pool earlier
                returned_past += 1
            seen.add(new)
        assert len(pool.images) == 50
    rate = returned_past / n
    assert abs(rate - 0.5) < 4 * math.sqrt(0.25 / n), rate  # binomial(4000, 0.5): within 4 sigma (0.032)


def test_image_pool_is_reproducible_and_can_be_disabled() -> None:
    def run(seed: int) -> torch.Tensor:
        pool = ImagePool(4, generator=torch.Generator().manual_seed(seed))
        return torch.cat([pool.query(torch.randn(3, 1, 2, 2, generator=torch.Generator().manual_seed(i)))
                          for i in range(10)])

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))
    x = torch.randn(5, 1, 2, 2)
    assert torch.equal(ImagePool(0).query(x), x)
    with pytest.raises(ValueError, match="size must be >= 0"):
        ImagePool(-1)


def test_image_pool_state_round_trips() -> None:
    pool = ImagePool(3, generator=torch.Generator().manual_seed(0))
    pool.query(torch.randn(5, 1, 2, 2))
    other = ImagePool(3)
    other.load_state_dict(pool.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(pool.images, other.images, strict=True))
