"""The translation benchmark at smoke scale on CPU (tiny networks, 16x16, a few dozen steps), so that
it cannot rot. Its numbers are plumbing checks, not results: the acceptance numbers come from
``python benchmarks/translation_mnist.py`` on a GPU. Writes into a temporary directory only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import translation_mnist as bench


@pytest.mark.slow  # about 20 s of CPU training, more on a busy machine
def test_translation_benchmark_smoke(mnist_root: Path, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert bench.main(["--smoke", "--root", str(mnist_root), "--out", str(tmp_path), "--device", "cpu"]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads((tmp_path / "translation-mnist.json").read_text())
    assert report["scale"] == "smoke" and set(report["results"]) == {"pix2pix", "cyclegan", "stargan"}
    for name in ("pix2pix", "cyclegan", "stargan"):
        assert (tmp_path / f"translation-{name}.png").is_file()
    p2p, cyc, star = (report["results"][m] for m in ("pix2pix", "cyclegan", "stargan"))
    # the per-pixel median is the L1-optimal constant image: no worse than the mean image
    assert 0 < p2p["constant_baseline_l1"] <= p2p["mean_image_baseline_l1"]
    assert p2p["l1_over_constant"] == pytest.approx(p2p["l1"] / p2p["constant_baseline_l1"])
    assert p2p["sharpness_truth"] > 0 and p2p["train"]["steps"] == 30 and p2p["l1_only_train"]["steps"] == 30
    # eroded vs dilated strokes differ on about a fifth of the canvas at 16x16
    assert 0.05 < cyc["identity_baseline_l1"] < 0.4 and 0 <= cyc["cycle_error_x"] <= 1
    assert star["translations"] == 3 * 64  # every test digit to each of the 3 other domains
    assert 0 <= star["aux_accuracy"] <= 1 and star["classifier_accuracy_on_real"] > 0.5
    assert not (Path(bench.__file__).parent / "results" / "translation-mnist.json").exists() or \
        json.loads((Path(bench.__file__).parent / "results" / "translation-mnist.json").read_text())["scale"] == "full"


def test_sharpness_and_constant_baseline_on_hand_made_images() -> None:
    flat = torch.zeros(2, 1, 8, 8)
    edge = torch.zeros(2, 1, 8, 8)
    edge[..., 4:] = 1.0  # a step from 0 to 1 in [-1, 1] units: a step of 0.5 in [0, 1]
    assert bench.sharpness(flat) == 0.0 and bench.sharpness(edge) > 0.0
    blurred = torch.nn.functional.avg_pool2d(edge, 3, 1, 1, count_include_pad=False)
    assert bench.sharpness(blurred) < bench.sharpness(edge) * 1.01  # blurring spreads, never sharpens, the step
    b = torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1, 1)
    assert bench.best_constant(b).item() == 0.0  # the median, not the mean 1/3
    assert bench.l1_unit(torch.ones(1, 1, 2, 2), -torch.ones(1, 1, 2, 2)) == 1.0


@pytest.mark.slow
def test_the_cpu_scale_runs_its_recipe_files_in_quick_mode(mnist_root: Path, tmp_path: Path) -> None:
    """--scale cpu --quick: the recipes of configs/cpu/ (a few steps), the 20-minute guard, CPU seconds,
    the better of the identity and constant baselines for every task, JSON and Markdown."""
    assert bench.main(["--scale", "cpu", "--quick", "--root", str(mnist_root), "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "translation-mnist.json").read_text())
    assert report["scale"] == "cpu" and report["load_average_before"]
    for name, r in report["results"].items():
        train = r["train"]
        assert train["steps"] == train["planned_steps"] == 3 and not train["stopped_by_budget"], name
        assert train["budget_seconds"] == 1200 and train["cpu_seconds"] > 0
        identity = r.get("identity_baseline_l1", r.get("source_l1"))
        assert r["l1_over_baseline"] == pytest.approx(r["l1"] / min(identity, r["constant_baseline_l1"]))
    md = (tmp_path / "translation-mnist.md").read_text()
    assert "| pix2pix | 3 |" in md and "cycle error" in md and "independent CNN" in md
    with pytest.raises(SystemExit):
        bench.main(["--scale", "cpu", "--quick"])  # quick numbers never land in benchmarks/results
    # a run of one method keeps the others' entries, each with its own date and command
    before = report["results"]
    assert bench.main(["--scale", "cpu", "--quick", "--methods", "cyclegan", "--root", str(mnist_root),
                       "--out", str(tmp_path)]) == 0
    after = json.loads((tmp_path / "translation-mnist.json").read_text())["results"]
    assert list(after) == ["pix2pix", "cyclegan", "stargan"]
    assert after["pix2pix"] == before["pix2pix"] and after["stargan"] == before["stargan"]
    assert after["cyclegan"]["command"].endswith("--methods cyclegan --root " + str(mnist_root) + " --out "
                                                 + str(tmp_path))
    assert "--methods cyclegan" not in after["pix2pix"]["command"]


def test_the_script_runs_as_a_script() -> None:
    """`python benchmarks/translation_mnist.py` imports its sibling `benchmarks.quality_mnist` from the
    repository root, not only when pytest has put the root on sys.path."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "translation_mnist.py"), "--help"],
                          cwd=root / "benchmarks", capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr
    assert "--scale" in done.stdout
