"""Acceptance: the README's main command (``ganforge train``, no config) learns real digits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.quality import digit_classifier, digit_quality, real_digits, within_class_spread


@pytest.mark.slow
def test_default_run_generates_recognisable_digits_of_every_class(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    run = tmp_path / "run"
    train = subprocess.run([sys.executable, "-m", "ganforge", "train", "--out", str(run)],
                           capture_output=True, text=True, env=subprocess_env, timeout=1200)
    assert train.returncode == 0, train.stderr
    assert (run / "config.toml").is_file() and (run / "checkpoints" / "latest").is_file()
    assert list((run / "samples").glob("step-*.png"))
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 2000

    out = tmp_path / "samples.npy"
    sample = subprocess.run([sys.executable, "-m", "ganforge", "sample", str(run), "-n", "1000", "--seed", "1",
                             "--out", str(out)], capture_output=True, text=True, env=subprocess_env, timeout=600)
    assert sample.returncode == 0, sample.stderr
    samples = np.load(out)
    assert samples.shape == (1000, 1, 16, 16)
    drawn_for = np.arange(1000) % 10  # the default is class-conditional: `sample` draws the classes in turn
    classifier = digit_classifier(samples.shape[-1])
    quality = digit_quality(samples, classifier, labels=drawn_for)
    real, real_labels = real_digits(samples.shape[-1])
    spread = within_class_spread(samples, drawn_for) / within_class_spread(real, real_labels)
    print(quality, f"within-class spread {spread:.2f} of the real digits'")

    # The yardstick must be able to fail: uniform noise does, and so does a generator that draws
    # one image per class (confident and balanced, but no variety).
    rng = np.random.default_rng(0)
    noise_q = digit_quality(rng.random(samples.shape, dtype=np.float32), classifier)
    assert noise_q["confident_fraction"] < 0.70 or noise_q["min_class_fraction"] < 0.04
    # The collapsed generator keeps a little pixel noise, so that its spread is not zero by
    # construction; a varied set (other real digits of each class) passes.
    reference = within_class_spread(real, real_labels)
    collapsed = np.clip(samples[np.arange(1000) % 10] + rng.normal(0, 0.05, samples.shape), 0, 1)
    assert 0 < within_class_spread(collapsed, drawn_for) / reference < 0.5
    assert within_class_spread(real[::-1], real_labels[::-1]) / reference > 0.8

    # Issue 2: >= 70% of 1,000 samples classified with p >= 0.8, every class >= 4%.
    assert quality["confident_fraction"] >= 0.70, quality
    assert quality["min_class_fraction"] >= 0.04, quality
    # The conditional generator draws the digit it is asked for, and many different ones of each.
    assert quality["label_agreement"] >= 0.90, quality
    assert spread >= 0.5, spread
