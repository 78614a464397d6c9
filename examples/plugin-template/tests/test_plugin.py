"""The template's own tests; run them with the plugin installed: ``pip install -e . && pytest``."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
from ganforge_hinge_example.hinge import HingeLoss, HingeLossConfig


def test_ganforge_plugins_lists_the_loss() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANFORGE_")}
    result = subprocess.run([sys.executable, "-m", "ganforge", "plugins"], capture_output=True, text=True,
                            env=env, check=True)
    assert "[ganforge-hinge-example 0.1.0]" in result.stdout
    assert re.search(r"^\s+loss\s+example-hinge\s", result.stdout, re.MULTILINE), result.stdout


def test_hinge_loss_values() -> None:
    loss = HingeLoss(HingeLossConfig())
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(0.75)
    assert loss.generator_loss(fake).item() == pytest.approx(1.0)


def test_margin_must_be_positive() -> None:
    with pytest.raises(ValueError, match="'margin' must be > 0.0"):
        HingeLossConfig(margin=0.0)
