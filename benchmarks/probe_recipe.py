"""Probe a CPU recipe: train ``configs/cpu/<model>-mnist.toml`` with overrides for a few thousand steps
and judge every checkpoint, to compare settings before spending a 20-minute run on one.

    python benchmarks/probe_recipe.py stylegan --steps 2000 --every 1000 --set optim.g.lr=6e-3 \\
        optim.d.lr=6e-3 --threads 1 --out /tmp/probe-lr6e-3.json

A probe is not a result: it prints and writes the curve (the share of 1,000 samples of the averaged
generator that ``quality_mnist.py``'s judge reads with p >= 0.9, and the rarest confident class) at
each checkpoint, with the overrides, steps per second, threads and load average, to a JSON path you
name (never under ``benchmarks/results/``). Training and the judge are seeded: a probe repeated with
the same settings and threads gives the same curve. Two probes on one thread each share a 2-core
machine with little loss (the StyleGAN recipe ran at about 4.4 steps/s each, against 6.0 alone on two).
Compare settings at equal steps, or at the steps that the same 2-core time buys each of them.

The judge is ``quality_mnist.py``'s, from its cache (trained there once, 11 minutes on 2 cores, when
absent); ``--quick`` trains a tiny judge and tiny networks for the smoke test CI runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: the benchmarks package lives at the repository root
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from ganforge import ConfigError, Trainer, load_config  # noqa: E402

from benchmarks import quality_mnist as q  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=q.MODELS)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every", type=int, default=1000, help="checkpoint (and judge) every this many steps")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--samples", type=int, default=None, help="samples judged per checkpoint (1,000)")
    parser.add_argument("--mnist", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--judge-cache", default=str(Path.home() / ".cache" / "ganforge" / "judges"))
    parser.add_argument("--classifier-epochs", type=int, default=3)
    parser.add_argument("--keep", default=None, help="keep the run directory here")
    parser.add_argument("--out", required=True, help="the JSON to write (a scratch path, not benchmarks/results)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny networks, data and judge")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    if (REPO / "benchmarks" / "results") in out.parents:
        parser.error(f"--out {args.out}: a probe is not a result; write it outside benchmarks/results/")
    if args.steps < 1 or args.every < 1:
        parser.error(f"--steps and --every must be >= 1 (got {args.steps} and {args.every})")
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return probe(args, argv, out)
    finally:
        torch.set_num_threads(threads)  # a probe run in-process (the tests) leaves the process as it was


def probe(args: argparse.Namespace, argv: list[str] | None, out: Path) -> int:
    """Train the recipe with the overrides, judge every checkpoint, write the JSON to ``out``."""
    samples = args.samples or (200 if args.quick else q.CPU_SAMPLES)
    recipe = REPO / "configs" / "cpu" / f"{args.model}-mnist.toml"
    overrides = [f"data.root={args.mnist}", "train.device=cpu", "output.progress=false",
                 *((q.QUICK[args.model] + q.CPU_QUICK) if args.quick else []),
                 f"train.steps={args.steps}", f"output.checkpoint_every={args.every}", "output.keep_last=0",
                 f"output.sample_every={args.steps}", *args.set]
    try:
        config = load_config(recipe, overrides)
    except ConfigError as exc:
        print(f"probe_recipe: {exc}", file=sys.stderr)
        return 2
    classifier, classifier_info = q.cached_classifier(
        args.mnist, torch.device("cpu"), epochs=1 if args.quick else args.classifier_epochs,
        limit=2048 if args.quick else 0, cache=Path(args.judge_cache) if args.judge_cache else None)
    with tempfile.TemporaryDirectory(prefix="ganforge-probe-") as tmp:
        run = Path(args.keep) if args.keep else Path(tmp) / args.model
        trainer = Trainer(config, run)
        t0 = time.perf_counter()
        q.fit_within(trainer, q.CPU_MINUTES * 60, args.model)
        seconds = time.perf_counter() - t0
        report: dict[str, Any] = {
            "benchmark": "probe_recipe", "model": args.model, "recipe": str(recipe.relative_to(REPO)),
            "overrides": args.set, "quick": args.quick, "date": datetime.datetime.now(datetime.UTC).isoformat(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "steps": trainer.step, "train_seconds": round(seconds, 1),
            "steps_per_second": round(trainer.step / seconds, 2), "samples": samples,
            "judge_test_accuracy": classifier_info["test_accuracy"],
            "command": " ".join(["python benchmarks/probe_recipe.py", *(argv if argv is not None else sys.argv[1:])]),
        }
        del trainer
        report["curve"] = q.curve(run, classifier, samples, seed=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.model} {' '.join(args.set)}: {report['steps']} steps, {report['steps_per_second']} steps/s "
          f"({report['threads']} threads)", file=sys.stderr)
    for point in report["curve"]:
        print(f"  step {point['step']}: confident {point['confident']:.3f}, "
              f"min class {point['min_class_fraction']:.3f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
