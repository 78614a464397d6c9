"""Studio latency: from a slider's move to the new image on the page, in a real headless browser.

For a 32x32 StyleGAN (the CPU recipe ``configs/cpu/stylegan-mnist.toml``; a run given with ``--run``,
or that recipe trained here for ``--train-steps`` steps: latency does not depend on how well it is
trained), the script serves ``ganforge studio``, fits InterFaceGAN's ink direction, then moves its
slider ``--moves`` times with the keyboard (one 0.1 step each, back and forth), waiting for each new
image before the next move. The page measures each move itself, from the slider's ``input`` event to
the ``load`` event of the new image (the request, the server's render and scoring, the PNG, the
decode), so Selenium's own overhead is not counted. Reported: median, p95, mean and max in ms, the
server's own share, with the machine, torch, date and load average; the issue's goal is a median
under 100 ms on 2 CPU cores.

    python benchmarks/studio_latency.py                        # 100 moves, writes benchmarks/results/cpu/
    python benchmarks/studio_latency.py --run RUN --screenshots docs/studio   # also the README's screenshots
    python benchmarks/studio_latency.py --quick --out /tmp/s   # CI smoke: a tiny run, 10 moves
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.browser when run as a script

import torch  # noqa: E402
from ganforge import get_plugin_manager, load_generator  # noqa: E402
from ganforge.cli import main as ganforge  # noqa: E402

from tests.browser import chromium, find_chromium, wait_for  # noqa: E402
from tests.browser import click as page_click  # noqa: E402
from tests.conftest import TINY_STYLEGAN  # noqa: E402

INK = "interfacegan:ink@w"


def train(work: Path, args: argparse.Namespace) -> Path:
    run = work / "run"
    if args.quick:
        (work / "tiny.toml").write_text(TINY_STYLEGAN)
        argv = ["train", str(work / "tiny.toml"), "--out", str(run), "--set", "train.steps=2",
                "--set", "train.batch_size=8", "--set", "output.progress=false"]
    else:
        argv = ["train", str(REPO / "configs" / "cpu" / "stylegan-mnist.toml"), "--out", str(run),
                "--set", f"data.root={args.mnist}", "--set", f"train.steps={args.train_steps}",
                "--set", "output.progress=false", "--set", f"output.checkpoint_every={args.train_steps}",
                "--set", f"output.sample_every={args.train_steps}"]
    if ganforge(argv) != 0:
        raise SystemExit("studio_latency: training the generator failed")
    return run


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def screenshots(driver: Any, folder: Path, mnist: Path, work: Path) -> list[str]:
    """The four views, with something in each (a fitted slider moved, an interpolation, an inversion
    of the first MNIST test digit)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.plugins.test_studio_browser import write_mnist_digit

    folder.mkdir(parents=True, exist_ok=True)
    names = []

    def shot(name: str) -> None:
        driver.save_screenshot(str(folder / f"studio-{name}.png"))
        names.append(f"studio-{name}.png")

    def click(css: str) -> None:
        page_click(driver, css)

    click('.tab[data-tab="explore"]')
    click("#mix-enabled")
    wait_for(driver, "return window.studio.last && window.studio.last.space === 'w+'")
    shot("explore")
    click("#mix-enabled")
    click('.tab[data-tab="edit"]')
    driver.execute_script("document.querySelector('[data-editor=\"ganspace\"]').open = true")
    shot("edit")
    click('.tab[data-tab="explore"]')
    for seed, end in ((3, "a"), (8, "b")):
        before = driver.execute_script("return window.studio.renders")
        click(f'.thumb[data-seed="{seed}"]')
        wait_for(driver, "return window.studio.renders > arguments[0]", 30, before)
        click('.tab[data-tab="interpolate"]')
        click(f"#interp-{end}")
        click('.tab[data-tab="explore"]')
    click('.tab[data-tab="interpolate"]')
    click("#interp-run")
    wait_for(driver, "return !document.querySelector('#interp-gif').hidden")
    time.sleep(0.5)
    shot("interpolate")
    if (mnist / "t10k-images-idx3-ubyte.gz").is_file():
        digit = work / "mnist-test-0.png"
        write_mnist_digit(mnist, digit)
        click('.tab[data-tab="invert"]')
        driver.find_element(By.CSS_SELECTOR, "#upload").send_keys(str(digit))
        Select(driver.find_element(By.CSS_SELECTOR, "#invert-method")).select_by_value("optimise")
        driver.find_element(By.CSS_SELECTOR, "#invert-steps").send_keys("300")
        click("#invert-run")
        wait_for(driver, "return document.querySelector('#invert-results .result')", 300)
        shot("invert")
    return names


def measure(run: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from ganforge_plugins.studio.command import Served
    from ganforge_plugins.studio.engine import Studio
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    trained = load_generator(run)
    studio = Studio(trained, get_plugin_manager(), out=work / "studio")
    for key in (INK, "ganspace:all") if args.screenshots else (INK,):  # GANSpace: its sliders in the picture
        job, _ = studio.fit(key, None)
        fitted = studio.jobs.wait(job["id"], 600)
        if fitted is None or fitted["status"] != "done":
            raise SystemExit(f"studio_latency: fitting {key} failed: {fitted}")
    served = Served(studio)
    try:
        with chromium(work / "downloads") as driver:
            driver.get(served.url + "/")
            wait_for(driver, "return window.studio && window.studio.renders >= 1")
            page_click(driver, '.tab[data-tab="edit"]')
            driver.execute_script("document.querySelector('[data-editor=\"interfacegan\"]').open = true")
            slider = driver.find_element(By.CSS_SELECTOR, f'input[data-slider="{INK}"]')
            for _ in range(args.warmup):  # the first renders pay for lazy initialisation
                before = driver.execute_script("return window.studio.renders")
                slider.send_keys(Keys.ARROW_RIGHT)
                wait_for(driver, "return window.studio.renders > arguments[0]", 30, before)
            driver.execute_script("window.studio.latencies = []; window.studio.serverMs = [];"
                                  "window.studio.onRender = (out) => window.studio.serverMs.push(out.ms);")
            key = Keys.ARROW_RIGHT
            for i in range(args.moves):
                if i % 20 == 0:  # back and forth across the slider's range
                    key = Keys.ARROW_LEFT if (i // 20) % 2 else Keys.ARROW_RIGHT
                before = driver.execute_script("return window.studio.renders")
                slider.send_keys(key)
                wait_for(driver, "return window.studio.renders > arguments[0]", 30, before)
            latencies = [float(v) for v in driver.execute_script("return window.studio.latencies")]
            server = [float(v) for v in driver.execute_script("return window.studio.serverMs")]
            shots = screenshots(driver, Path(args.screenshots), Path(args.mnist), work) if args.screenshots else []
    finally:
        served.stop()
    return {"moves": len(latencies), "median_ms": statistics.median(latencies),
            "p95_ms": percentile(latencies, 0.95), "mean_ms": statistics.fmean(latencies), "max_ms": max(latencies),
            "server_median_ms": statistics.median(server) if server else None,
            "goal_median_ms": 100.0, "met": statistics.median(latencies) < 100.0,
            "generator": {"name": trained.config.generator.name, "shape": list(trained.spec.shape),
                          "step": trained.checkpoint.step,
                          "parameters": sum(p.numel() for p in trained.module.parameters())},
            "latencies_ms": [round(v, 2) for v in latencies], "screenshots": shots}


def markdown(report: dict[str, Any]) -> str:
    r = report["result"]
    g = r["generator"]
    return "\n".join([
        "# Studio latency: slider move to new image on the page", "",
        f"{report['device']} ({report['cpu_count']} cores, load average {report['load_average_before']}), torch "
        f"{report['torch']}, {report['date']}, headless Chromium {report['browser']}.", "",
        f"Generator: {g['name']} {'x'.join(map(str, g['shape']))}, {g['parameters']:,} parameters (step {g['step']}).",
        "",
        "| moves | median ms | p95 ms | mean ms | max ms | server median ms | goal: median < 100 ms |",
        "|---:|---:|---:|---:|---:|---:|---|",
        f"| {r['moves']} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | {r['mean_ms']:.1f} | {r['max_ms']:.1f} | "
        f"{r['server_median_ms'] if r['server_median_ms'] is not None else float('nan'):.1f} | "
        f"{'met' if r['met'] else 'missed'} |",
        "", f"Command: `{report['command']}`", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a trained run to serve (default: train the CPU StyleGAN recipe here)")
    parser.add_argument("--mnist", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--moves", type=int, default=None, help="slider moves measured (100; --quick 10)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--screenshots", help="also save a screenshot of each view in this folder")
    parser.add_argument("--out", default=None, help="default benchmarks/results/cpu")
    parser.add_argument("--quick", action="store_true", help="CI smoke run: a tiny generator, 10 moves")
    args = parser.parse_args(argv)
    args.moves = args.moves or (10 if args.quick else 100)
    if args.quick and args.out is None:
        parser.error("--quick results are not benchmark results: give --out a scratch directory")
    found = find_chromium()
    if isinstance(found, str):
        print(f"studio_latency: {found}", file=sys.stderr)
        return 1
    out = Path(args.out or REPO / "benchmarks" / "results" / "cpu")
    out.mkdir(parents=True, exist_ok=True)
    load = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="ganforge-studio-latency-") as tmp:
        work = Path(tmp)
        (work / "downloads").mkdir()
        run = Path(args.run) if args.run else train(work, args)
        result = measure(run, args, work)
    import subprocess

    version = subprocess.run([found[0], "--version"], capture_output=True, text=True, check=False).stdout.strip()
    report = {"benchmark": "studio_latency", "quick": args.quick,
              "date": datetime.datetime.now(datetime.UTC).isoformat(),
              "device": platform.processor() or "cpu", "cpu_count": os.cpu_count(), "load_average_before": load,
              "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
              "browser": version, "command": " ".join(["python benchmarks/studio_latency.py",
                                                        *(argv if argv is not None else sys.argv[1:])]),
              "run": str(args.run) if args.run else f"configs/cpu/stylegan-mnist.toml, {args.train_steps} steps",
              "result": result}
    (out / "studio_latency.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "studio_latency.md").write_text(markdown(report))
    r = result
    print(f"studio latency over {r['moves']} moves: median {r['median_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms "
          f"(server {r['server_median_ms']} ms); wrote {out / 'studio_latency.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
