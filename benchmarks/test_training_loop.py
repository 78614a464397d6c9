"""Engine overhead: ``Trainer.train_step`` against a hand-written PyTorch loop on the same models.

Two procedures, each beside the loop a user would write by hand for the same networks, data,
optimisers and mathematics, from the same seed on the same device:

- ``gan``: the embedded default (class-conditional DCGAN, non-saturating loss, Adam, digits at 16x16
  with their labels, batch 64);
- ``cyclegan``: the CycleGAN procedure (ResNet generators, instance-norm PatchGANs, LSGAN, cycle and
  identity L1 terms, image pools of 50) on 16x16 thin/bold MNIST digits, batch 8 (skipped without MNIST).

The engine must cost no more than a few percent more per step: the ratio ``engine / hand`` of the best
of alternating short blocks (so that machine noise hits both alike) is printed, kept in ``extra_info``
and, when run as a script, written with the machine and versions to
``benchmarks/results/loop-overhead.json``::

    python benchmarks/test_training_loop.py [--rounds 12] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from ganforge import Trainer, load_config

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "data" / "mnist"
GAN_SETTINGS = ["train.batch_size=64", "train.ema_half_life=0", "output.progress=false"]
CYCLEGAN_SETTINGS = [f"data.root={json.dumps(str(MNIST))}", "data.resolution=16", "data.limit=1024",
                     "data.test_split=\"none\"", "train.batch_size=8", "generator.base_channels=16",
                     "generator.n_blocks=3", "discriminator.base_channels=16", "output.progress=false"]


def gan_trainer(out: Path) -> Trainer:
    return Trainer(load_config(None, GAN_SETTINGS), out)


def cyclegan_trainer(out: Path) -> Trainer:
    return Trainer(load_config(REPO / "configs" / "translation" / "cyclegan-mnist-thin2bold.toml", CYCLEGAN_SETTINGS),
                   out)


def hand_written_gan(trainer: Trainer) -> Callable[[], object]:
    """The loop a user writes by hand for the same networks, data and optimisers."""
    G, D = trainer.network("generator"), trainer.network("discriminator")
    opt_g, opt_d = trainer.updates.optimizers["g"], trainer.updates.optimizers["d"]
    data = trainer.updates.streams["data"].tensors
    images, labels = data["images"], data["labels"]
    n, z_dim = 64, trainer.updates.space("generator").shape[0]
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


def hand_written_cyclegan(trainer: Trainer) -> Callable[[], object]:
    """CycleGAN's ``optimize_parameters`` written out by hand on the trainer's networks and optimisers."""
    from ganforge_plugins.procedures.image_pool import ImagePool

    G, F_, D_X, D_Y = (trainer.network(n) for n in ("generator", "generator_f", "discriminator_x", "discriminator_y"))
    opt_g, opt_d = trainer.updates.optimizers["g"], trainer.updates.optimizers["d"]
    xs, ys = trainer.updates.streams["x"].tensors["images"], trainer.updates.streams["y"].tensors["images"]
    g_params = [*G.parameters(), *F_.parameters()]
    rng = torch.Generator().manual_seed(0)
    pool_x, pool_y = ImagePool(50, generator=rng), ImagePool(50, generator=rng)
    n = 8

    def mse(logits: torch.Tensor, target: float) -> torch.Tensor:
        return ((logits - target) ** 2).mean()

    def step() -> tuple[torch.Tensor, torch.Tensor]:
        x, y = xs[torch.randint(0, len(xs), (n,))], ys[torch.randint(0, len(ys), (n,))]
        fake_y, fake_x = G(x), F_(y)
        cycle = (F_(fake_y) - x).abs().mean() + (G(fake_x) - y).abs().mean()
        identity = (G(y) - y).abs().mean() + (F_(x) - x).abs().mean()
        adversarial = 0.5 * mse(D_Y(fake_y), 1.0) + 0.5 * mse(D_X(fake_x), 1.0)  # LSGAN's (D(G(x)) - 1)^2 / 2
        g_loss = adversarial + 10.0 * cycle + 5.0 * identity
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward(inputs=g_params)
        opt_g.step()
        pooled_y, pooled_x = pool_y.query(fake_y.detach()), pool_x.query(fake_x.detach())
        d_loss = x.new_zeros(())
        for D, real, fake in ((D_Y, y, pooled_y), (D_X, x, pooled_x)):
            d_loss = d_loss + 0.5 * (0.5 * mse(D(real), 1.0) + 0.5 * mse(D(fake), 0.0))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        return d_loss.detach(), g_loss.detach()

    return step


def seconds_per_step(step: Callable[[], object], steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def measure(procedure: str, work: Path, *, rounds: int, steps: int) -> dict[str, Any]:
    """Best-of-``rounds`` seconds per step of the engine and of the hand-written loop, alternating."""
    make, hand_written = PROCEDURES[procedure]
    engine = make(work / "engine")
    hand = hand_written(make(work / "hand"))
    engine.train_step(), hand()  # warm-up: allocator, optimiser state, the pools' first fill
    engine_s, hand_s = [], []
    for _ in range(rounds):
        engine_s.append(seconds_per_step(engine.train_step, steps))
        hand_s.append(seconds_per_step(hand, steps))
    assert engine.step == 1 + rounds * steps  # every call really trained
    return {"procedure": procedure, "engine_ms": min(engine_s) * 1e3, "hand_ms": min(hand_s) * 1e3,
            "ratio": min(engine_s) / min(hand_s), "rounds": rounds, "steps_per_round": steps,
            "load_average": os.getloadavg()[0], "threads": torch.get_num_threads()}


PROCEDURES: dict[str, tuple[Callable[[Path], Trainer], Callable[[Trainer], Callable[[], object]]]] = {
    "gan": (gan_trainer, hand_written_gan),
    "cyclegan": (cyclegan_trainer, hand_written_cyclegan),
}


@pytest.mark.parametrize("procedure", list(PROCEDURES))
def test_engine_overhead_over_a_hand_written_loop(procedure: str, benchmark: Any, tmp_path: Path) -> None:
    if procedure == "cyclegan" and not MNIST.is_dir():
        pytest.skip(f"real MNIST not found at {MNIST}")
    result = measure(procedure, tmp_path, rounds=3, steps=2)  # quick mode: the full run is the script's
    benchmark.extra_info.update(result)
    print(f"{procedure}: engine {result['engine_ms']:.2f} ms/step, hand-written {result['hand_ms']:.2f} ms/step, "
          f"ratio {result['ratio']:.3f}")
    engine = PROCEDURES[procedure][0](tmp_path / "timed")
    benchmark.pedantic(engine.train_step, rounds=2, warmup_rounds=0)
    assert engine.step == 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "loop-overhead.json"))
    args = parser.parse_args(argv)
    import tempfile

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for procedure in PROCEDURES:
            results.append(measure(procedure, Path(tmp) / procedure, rounds=args.rounds, steps=args.steps))
            r = results[-1]
            print(f"{procedure}: engine {r['engine_ms']:.2f} ms, hand {r['hand_ms']:.2f} ms, ratio {r['ratio']:.3f} "
                  f"(load {r['load_average']:.2f})", file=sys.stderr)
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "torch": torch.__version__, "results": results}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
