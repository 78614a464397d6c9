"""The example procedure's own tests: its losses against their formulas, and a few steps of training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from ganforge import Trainer, get_plugin_manager, load_config, load_generator
from ganforge_ragan_example.ragan import relativistic_d_loss, relativistic_g_loss


def test_the_losses_are_the_papers_formulas() -> None:
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 1.0])  # means 1 and 0
    d = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(0.0))) / 2 + \
        (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(0.0))) / 2
    assert relativistic_d_loss(real, fake).item() == pytest.approx(d, rel=1e-6)
    assert relativistic_g_loss(real, fake).item() > relativistic_d_loss(real, fake).item()  # D is winning here


def test_trains_a_few_steps_through_the_engine(tmp_path: Path) -> None:
    assert "example-ragan" in get_plugin_manager().registries["procedure"]
    settings = ["procedure.name=example-ragan", "train.steps=3", "train.batch_size=16", "generator.base_channels=8",
                "discriminator.base_channels=8", "output.progress=false", "output.preview_samples=16"]
    trainer = Trainer(load_config(None, settings), tmp_path / "run")
    trainer.fit()
    assert trainer.step == 3
    samples = load_generator(tmp_path / "run").sample(4, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4, 1, 16, 16) and torch.isfinite(samples).all()
