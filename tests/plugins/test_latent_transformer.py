"""The latent transformer (Yao et al. 2021): its loss terms against hand-computed values, T(w, 0) = w and
linearity in alpha, flipping a planted attribute while keeping a correlated one better than InterFaceGAN,
files bound to their generator, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from ganforge import ConfigError, Editor, get_plugin_manager
from ganforge_plugins.latent.interfacegan import InterFaceGAN, InterFaceGANConfig
from ganforge_plugins.latent.latent_transformer import (
    LatentTransformer,
    LatentTransformerConfig,
    balanced_bce,
    flip_targets,
    mlp,
    transform,
    transformer_loss,
)
from ganforge_plugins.latent.spaces import render, sample_latents

from tests.plugins.latent_toys import LeftHalfBrightness, LinearStyleToy
from tests.plugins.test_latent_editors import tiny_dcgan

CPU = torch.device("cpu")
MANAGER = get_plugin_manager()


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def small(**changes) -> LatentTransformerConfig:
    base = {"space": "w", "attribute": "brightness", "preserve": ("left",), "num_samples": 2000, "steps": 600,
            "classifier_steps": 300, "hidden": 64, "classifier_hidden": 64, "batch_size": 128}
    return LatentTransformerConfig(**{**base, **changes})


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy_and_editor() -> tuple[LinearStyleToy, LatentTransformer]:
    toy = LinearStyleToy(seed=3)
    editor = LatentTransformer(small(), scorers={"left": LeftHalfBrightness()})
    editor.fit(toy, device=CPU, generator_rng=rng(0))
    return toy, editor


def test_paper_defaults_and_registration() -> None:
    cfg = LatentTransformerConfig()
    assert (cfg.lambda_attr, cfg.lambda_rec) == (1.0, 10.0)
    editor = MANAGER.get("editor", "latent-transformer").factory(cfg)
    assert isinstance(editor, Editor) and editor.space == "w"


def test_flip_targets_and_balanced_bce_by_hand() -> None:
    p = torch.tensor([0.2, 0.2, 0.9, 0.9, 0.45])
    alpha = torch.tensor([1.0, 0.2, -1.0, 0.05, 0.1])
    # 0.2 + 1 -> 1; 0.2 + 0.2 = 0.4 -> 0; 0.9 - 1 -> 0; 0.95 -> 1; 0.55 -> 1
    torch.testing.assert_close(flip_targets(p, alpha), torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0]))
    logits, targets = torch.tensor([0.0, 2.0, -1.0, 0.5]), torch.tensor([1.0, 1.0, 1.0, 0.0])
    # 3 positives weighted 4 / 6, one negative weighted 4 / 2: mean of w * bce
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    expected = (bce * torch.tensor([2 / 3, 2 / 3, 2 / 3, 2.0])).mean()
    torch.testing.assert_close(balanced_bce(logits, targets), expected)


def test_loss_is_cls_plus_weighted_attr_and_rec() -> None:
    logit, targets = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])  # cls = log 2
    others_edit, others = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [1.0]])  # attr = (1 + 4) / 2
    edited, w = torch.tensor([[1.0, 1.0], [0.0, 0.0]]), torch.zeros(2, 2)  # rec = 2 / 4
    total, parts = transformer_loss(logit, targets, others_edit, others, edited, w, lambda_attr=1.0, lambda_rec=10.0)
    assert parts["cls"] == pytest.approx(math.log(2))
    assert parts["attr"] == pytest.approx(2.5) and parts["rec"] == pytest.approx(0.5)
    assert float(total) == pytest.approx(math.log(2) + 2.5 + 5.0)


def test_transform_is_identity_at_zero_and_linear_in_alpha() -> None:
    torch.manual_seed(0)
    f = mlp(6, 8, 6, 2)
    w = torch.randn(3, 2, 3)  # W+-shaped latents are flattened for f
    torch.testing.assert_close(transform(f, w, 0.0), w)
    d1 = transform(f, w, 1.0) - w
    torch.testing.assert_close(transform(f, w, torch.tensor([2.0, -1.0, 0.5])) - w,
                               d1 * torch.tensor([2.0, -1.0, 0.5])[:, None, None])
    torch.testing.assert_close(d1, f(w.reshape(3, 6)).reshape(3, 2, 3))


def test_flips_the_target_and_keeps_the_correlated_attribute_better_than_interfacegan(toy_and_editor) -> None:
    toy, editor = toy_and_editor
    assert editor.classifier_accuracy > 0.95  # C learns the (linear) brightness label
    assert editor.history["transformer_cls"][-1] < 0.5 * editor.history["transformer_cls"][0]
    w = sample_latents(toy, 400, "w", generator_rng=rng(7))
    x0 = render(toy, w, "w")
    positive = editor.is_positive(x0)
    assert 0.3 < float(positive.float().mean()) < 0.7  # threshold: the median score
    up, down = render(toy, editor.edit(w, 1.0), "w"), render(toy, editor.edit(w, -1.0), "w")
    assert float(editor.is_positive(up)[~positive].float().mean()) >= 0.8  # alpha = 1 flips negatives
    assert float((~editor.is_positive(down))[positive].float().mean()) >= 0.8  # alpha = -1 flips positives
    # the other attribute moves less per unit of brightness change than along InterFaceGAN's direction
    ig = InterFaceGAN(InterFaceGANConfig(space="w", attribute="brightness", num_samples=2000, num_keep=200))
    ig.fit(toy, device=CPU, generator_rng=rng(0))
    bright, left = MANAGER.get("scorer", "brightness").factory(MANAGER.get("scorer", "brightness").config()), \
        LeftHalfBrightness()

    def side_effect(x1: torch.Tensor) -> float:
        moved = (left.score(x1) - left.score(x0)).abs().mean()
        return float(moved / (bright.score(x1) - bright.score(x0)).abs().mean())

    assert side_effect(up) < 0.8 * side_effect(render(toy, w + ig.direction, "w"))


def test_file_round_trips_and_is_refused_for_another_generator(toy_and_editor, tmp_path: Path) -> None:
    toy, editor = toy_and_editor
    path = editor.save(tmp_path / "lt.safetensors", toy)
    side = json.loads((tmp_path / "lt.safetensors.json").read_text())
    assert side["kind"] == "latent-transformer" and side["space"] == "w" and side["attribute"] == "brightness"
    assert side["preserve"] == ["left"] and len(side["generator"]["fingerprint"]) == 64
    again = LatentTransformer(LatentTransformerConfig(space="w", direction=str(path)))
    again.fit(toy, device=CPU, generator_rng=rng())
    w = sample_latents(toy, 5, "w", generator_rng=rng(1))
    torch.testing.assert_close(again.edit(w, 0.7), editor.edit(w, 0.7))
    assert again.threshold == editor.threshold
    with pytest.raises(ConfigError, match=r"generator: .*lt.safetensors' belongs to another generator"):
        LatentTransformer(LatentTransformerConfig(space="w", direction=str(path))).fit(
            LinearStyleToy(seed=4), device=CPU, generator_rng=rng())
    with pytest.raises(ConfigError, match=r"space: .* holds a latent transformer of 'w', the editor edits 'z'"):
        LatentTransformer(LatentTransformerConfig(space="z", direction=str(path))).fit(toy, device=CPU,
                                                                                        generator_rng=rng())
    with pytest.raises(ConfigError, match="never pickle"):
        editor.save(tmp_path / "lt.pt", toy)


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"space: DCGANGenerator has no latent space 'w'.*mapping network"):
        LatentTransformer(LatentTransformerConfig()).fit(tiny_dcgan(), device=CPU, generator_rng=rng())
    with pytest.raises(ValueError, match="'lambda_rec'"):
        LatentTransformerConfig(lambda_rec=-1.0)
    with pytest.raises(ConfigError, match="call fit"):
        LatentTransformer(LatentTransformerConfig()).edit(torch.zeros(2, 12), 1.0)
    with pytest.raises(ConfigError, match=r"preserve: unknown scorer 'thikness'"):
        LatentTransformer(small(preserve=("thikness",), steps=1, classifier_steps=1, num_samples=16)).fit(
            LinearStyleToy(), device=CPU, generator_rng=rng())
    editor = LatentTransformer(small(steps=1, classifier_steps=1, num_samples=16),
                               scorers={"left": LeftHalfBrightness()})
    editor.fit(LinearStyleToy(), device=CPU, generator_rng=rng())
    with pytest.raises(ValueError, match=r"expected latents \[N, 12\] in 'w', got \(2, 5\)"):
        editor.edit(torch.zeros(2, 5), 1.0)
