"""Engine overhead: ``Trainer.train_step`` against a hand-written PyTorch loop on the same models.

Both run the embedded default (class-conditional DCGAN, non-saturating loss, Adam, digits at 16x16
with their labels, batch 64) from the same seed on the same device; the engine must cost no more than a
few percent more per step.
The ratio is reported in ``extra_info`` (``engine / hand``); ``python -m benchmarks.report`` turns
a ``--benchmark-json`` file into the Markdown summary committed under ``benchmarks/results/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from ganforge import Trainer, load_config

STEPS = 5
ROUNDS = 12
SETTINGS = ["train.batch_size=64", "train.ema_half_life=0", "output.progress=false"]


def engine_step(tmp_path: Path) -> tuple[Callable[[], object], Trainer]:
    trainer = Trainer(load_config(None, SETTINGS), tmp_path)
    return trainer.train_step, trainer


def hand_written_step(trainer: Trainer) -> Callable[[], object]:
    """The loop a user writes by hand for the same networks, data and optimisers."""
    G, D = trainer.generator, trainer.discriminator
    opt_g, opt_d = trainer.opt_g, trainer.opt_d
    images, labels = trainer.data.images, trainer.data.labels
    assert labels is not None, "the embedded default is class-conditional"
    n, z_dim = 64, trainer.space.shape[0]
    g_params = list(G.parameters())

    def step() -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(0, len(images), (n,))
        real, y = images[index], labels[index]
        with torch.no_grad():
            fake = G(torch.randn(n, z_dim), y)
        d_loss = F.softplus(-D(real, y)).mean() + F.softplus(D(fake, y)).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        y = labels[torch.randint(0, len(images), (n,))]  # fake labels follow the data's class frequencies
        g_loss = F.softplus(-D(G(torch.randn(n, z_dim), y), y)).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward(inputs=g_params)
        opt_g.step()
        return d_loss.detach(), g_loss.detach()

    return step


def seconds_per_step(step: Callable[[], object], steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def test_engine_overhead_over_a_hand_written_loop(benchmark: pytest.FixtureRequest, tmp_path: Path) -> None:
    engine = Trainer(load_config(None, SETTINGS), tmp_path / "engine")
    hand = hand_written_step(Trainer(load_config(None, SETTINGS), tmp_path / "hand"))
    engine.train_step(), hand()  # warm-up: allocator, optimiser state
    # alternate short blocks, so that machine noise hits both alike; keep the best block of each
    engine_s, hand_s = [], []
    for _ in range(ROUNDS):
        engine_s.append(seconds_per_step(engine.train_step, STEPS))
        hand_s.append(seconds_per_step(hand, STEPS))
    ratio = min(engine_s) / min(hand_s)
    benchmark.extra_info.update(engine_ms=min(engine_s) * 1e3, hand_ms=min(hand_s) * 1e3, ratio=ratio)
    benchmark.pedantic(engine.train_step, rounds=STEPS, warmup_rounds=0)
    assert engine.step == 1 + ROUNDS * STEPS + STEPS  # every call really trained
