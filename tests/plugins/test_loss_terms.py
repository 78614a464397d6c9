"""The registered loss terms against their formulas on hand-made tensors, and the image pool's statistics."""

from __future__ import annotations

import math

import pytest
import torch
from ganforge import LossTerm, get_plugin_manager
from ganforge_plugins.procedures.image_pool import ImagePool

TERMS = get_plugin_manager().registries["loss-term"]


def term(name: str, **params: float) -> LossTerm:
    component = TERMS.get(name)
    built: LossTerm = component.factory(component.config(**params))
    return built


def test_every_registered_term_is_a_loss_term_of_a_known_kind() -> None:
    assert {"l1", "l2", "smooth-l1", "cross-entropy", "bce"} <= set(TERMS.names())
    for component in TERMS:
        built = term(component.name)
        assert isinstance(built, LossTerm) and built.kind in ("distance", "classification")
    assert not isinstance(lambda a, b: a, LossTerm)  # a plain callable is not a loss term


def test_l1_as_cycle_consistency_is_the_mean_absolute_error_of_each_direction() -> None:
    x = torch.tensor([[[[0.0, 1.0], [0.5, -1.0]]]])  # [1, 1, 2, 2]
    f_g_x = torch.tensor([[[[0.5, 1.0], [0.0, 0.0]]]])  # |diff| = 0.5, 0, 0.5, 1 -> mean 0.5
    y = torch.zeros(1, 1, 2, 2)
    g_f_y = torch.tensor([[[[0.2, -0.2], [0.0, 0.4]]]])  # mean 0.2
    l1 = term("l1")
    assert l1(f_g_x, x).item() == pytest.approx(0.5)
    assert (l1(f_g_x, x) + l1(g_f_y, y)).item() == pytest.approx(0.7)
    assert l1(x, x).item() == 0.0
    with pytest.raises(ValueError, match=r"shapes differ: \(1, 1, 2, 2\) and \(4,\)"):
        l1(x, f_g_x.flatten())


def test_l2_and_smooth_l1_against_their_formulas() -> None:
    a = torch.tensor([0.0, 0.0, 0.0])
    b = torch.tensor([0.05, 1.0, -2.0])
    assert term("l2")(a, b).item() == pytest.approx((0.05**2 + 1 + 4) / 3)
    beta = 0.1  # quadratic 0.5 d^2 / beta inside beta, linear |d| - beta / 2 outside
    expected = (0.5 * 0.05**2 / beta + (1 - beta / 2) + (2 - beta / 2)) / 3
    assert term("smooth-l1", beta=beta)(a, b).item() == pytest.approx(expected, rel=1e-6)


def test_domain_classification_is_the_negative_log_probability_of_the_domain() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    domains = torch.tensor([0, 2])
    p0 = math.exp(2) / (math.exp(2) + 2)
    expected = (-math.log(p0) - math.log(1 / 3)) / 2
    assert term("cross-entropy")(logits, domains).item() == pytest.approx(expected, rel=1e-6)
    one_hot = torch.nn.functional.one_hot(domains, 3).float()  # per-class targets give the same number
    assert term("cross-entropy")(logits, one_hot).item() == pytest.approx(expected, rel=1e-6)


def test_multi_attribute_classification_sums_binary_cross_entropies() -> None:
    logits = torch.tensor([[0.0, 2.0]])
    attributes = torch.tensor([[1.0, 0.0]])  # -log sigmoid(0) - log(1 - sigmoid(2))
    expected = math.log(2) + math.log(1 + math.exp(2))
    assert term("bce")(logits, attributes).item() == pytest.approx(expected, rel=1e-6)


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
