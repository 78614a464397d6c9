"""The translation benchmark at smoke scale on CPU (tiny networks, 16x16, a few dozen steps), so that
it cannot rot. Its numbers are plumbing checks, not results: the acceptance numbers come from
``python benchmarks/translation_mnist.py`` on a GPU. Writes into a temporary directory only."""

from __future__ import annotations

import json
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
