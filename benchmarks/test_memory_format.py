"""``train.memory_format``: seconds per training step of the CPU recipes in NCHW and in NHWC.

oneDNN's CPU convolutions (and cuDNN's on tensor cores) work in NHWC; with NCHW tensors each one
reorders its input and output. Each recipe of ``configs/cpu/`` is built twice from the same seed, once
per layout, and timed in alternating blocks (so that machine noise hits both alike); the ratio
``channels_last / contiguous`` of the best blocks is printed, kept in ``extra_info`` and, run as a
script, written with the machine and versions to ``benchmarks/results/cpu/memory-format.json``::

    python benchmarks/test_memory_format.py [--rounds 8] [--steps 5] [--recipes pggan-mnist ...]

PGGAN is timed at its last resolution (32x32, no growing), where its 20 minutes are mostly spent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from ganforge import Trainer, load_config

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(REPO))

from benchmarks.quality_mnist import cpu_model  # noqa: E402

MNIST = REPO.parent / "shared" / "data" / "mnist"
CPU = REPO / "configs" / "cpu"
COMMON = [f"data.root={json.dumps(str(MNIST))}", "data.limit=2048", "train.device=\"cpu\"", "output.progress=false"]
RECIPES: dict[str, list[str]] = {
    "cdcgan-mnist": [],
    "pggan-mnist": ["generator.progressive=false", "discriminator.progressive=false"],
    "stylegan-mnist": [],
    "pix2pix-edges2mnist": ["data.test_limit=64"],
    "cyclegan-mnist-thin2bold": ["data.test_limit=64"],
    "stargan-mnist-styles": ["data.test_limit=64"],
}


def trainer(recipe: str, memory_format: str, out: Path, *extra: str) -> Trainer:
    settings = [*COMMON, *RECIPES[recipe], f"train.memory_format={json.dumps(memory_format)}", *extra]
    return Trainer(load_config(CPU / f"{recipe}.toml", settings), out)


def seconds_per_step(t: Trainer, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        t.train_step()
    return (time.perf_counter() - t0) / steps


def measure(recipe: str, work: Path, *, rounds: int, steps: int, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Best-of-``rounds`` seconds per step in either layout, alternating blocks."""
    runs = {fmt: trainer(recipe, fmt, work / fmt, *extra) for fmt in ("contiguous", "channels_last")}
    for t in runs.values():
        t.train_step()  # warm-up: allocator, optimiser state, oneDNN's primitive cache
    seconds: dict[str, list[float]] = {fmt: [] for fmt in runs}
    for _ in range(rounds):
        for fmt, t in runs.items():
            seconds[fmt].append(seconds_per_step(t, steps))
    assert all(t.step == 1 + rounds * steps for t in runs.values())  # every call really trained
    best = {fmt: min(s) for fmt, s in seconds.items()}
    return {"recipe": recipe, "contiguous_ms": best["contiguous"] * 1e3,
            "channels_last_ms": best["channels_last"] * 1e3,
            "ratio": best["channels_last"] / best["contiguous"], "speedup": best["contiguous"] / best["channels_last"],
            "batch_size": runs["contiguous"].config.train.batch_size, "rounds": rounds, "steps_per_round": steps,
            "load_average": os.getloadavg()[0], "threads": torch.get_num_threads()}


@pytest.mark.parametrize("recipe", ["pggan-mnist", "cyclegan-mnist-thin2bold"])
def test_channels_last_against_contiguous(recipe: str, benchmark: Any, tmp_path: Path) -> None:
    if not MNIST.is_dir():
        pytest.skip(f"real MNIST not found at {MNIST}")
    # quick mode at 16x16 (the full run is the script's)
    result = measure(recipe, tmp_path, rounds=2, steps=1, extra=("data.resolution=16",))
    benchmark.extra_info.update(result)
    print(f"{recipe}: contiguous {result['contiguous_ms']:.1f} ms/step, channels_last "
          f"{result['channels_last_ms']:.1f} ms/step, speed-up {result['speedup']:.2f}x")
    t = trainer(recipe, "channels_last", tmp_path / "timed", "data.resolution=16")
    benchmark.pedantic(t.train_step, rounds=2, warmup_rounds=0)
    assert t.step == 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cpu" / "memory-format.json"))
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes:
            r = measure(recipe, Path(tmp) / recipe, rounds=args.rounds, steps=args.steps)
            results.append(r)
            print(f"{recipe}: contiguous {r['contiguous_ms']:.1f} ms, channels_last {r['channels_last_ms']:.1f} ms, "
                  f"speed-up {r['speedup']:.2f}x (load {r['load_average']:.2f})", file=sys.stderr)
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": platform.processor() or platform.machine(),
              "cpu": cpu_model(), "cpus": os.cpu_count(), "torch": torch.__version__,
              "command": "python benchmarks/test_memory_format.py " + " ".join(argv or sys.argv[1:]),
              "results": results}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
