"""Real-data sanity of the metrics with the MNIST domain extractor: two samples of MNIST are close, and
degrading the images moves FID monotonically; a DCGAN scores worse early in training than later."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ganforge.cli import main

from tests.conftest import SHARED_DATA

MNIST = SHARED_DATA / "mnist"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not MNIST.is_dir(), reason="real MNIST is not available")]


def test_fid_is_small_between_mnist_splits_and_grows_with_blur_and_noise() -> None:
    from benchmarks.eval_mnist_sanity import sanity_table

    table = sanity_table(str(MNIST), 3000, blur_sigmas=(0.5, 1.0, 2.0), noise_stds=(0.1, 0.2, 0.4), kid_subsets=20)
    rows = table["rows"]
    split = next(r for r in rows if r["comparison"] == "test vs train")
    for kind in ("blurred", "noised"):
        fids = [r["fid"] for r in rows if kind in r["comparison"]]
        kids = [r["kid_mean"] for r in rows if kind in r["comparison"]]
        assert fids == sorted(fids) and len(set(fids)) == len(fids), (kind, fids)  # strictly increasing
        assert kids == sorted(kids), (kind, kids)
        assert split["fid"] < fids[0] / 2  # the two splits are closer than the mildest degradation
    assert abs(split["kid_mean"]) < 0.01


RUN = """
[data]
name = "mnist"
root = "{root}"
resolution = 16
limit = 20000

[generator]
name = "dcgan"
base_channels = 16
latent_dim = 32

[discriminator]
name = "dcgan"
base_channels = 16

[train]
steps = 300
batch_size = 64

[output]
progress = false
log_every = 50
sample_every = 100
checkpoint_every = 50
keep_last = 0

[[callbacks]]
name = "eval"
every = 50
num_samples = 1000
real_samples = 2000
cache_dir = "{cache}"
metrics = [{{name = "fid"}}, {{name = "kid", subset_size = 500, subsets = 20}}]
"""


def test_a_dcgan_scores_worse_early_in_training_than_later(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    config = tmp_path / "run.toml"
    config.write_text(RUN.format(root=MNIST, cache=tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 0
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    fid = {r["step"]: r["fid"] for r in logged if "fid" in r}
    kid = {r["step"]: r["kid_mean"] for r in logged if "kid_mean" in r}
    assert sorted(fid) == list(range(50, 301, 50))
    assert fid[300] < fid[50] / 2 and kid[300] < kid[50] / 2
    # the same through `ganforge eval` on the checkpoints, on more samples and the held-out test split
    scores = {}
    for step in (50, 300):
        assert main(["eval", str(run / "checkpoints" / f"step-{step:08d}"), "--metrics", "fid,kid", "-n", "2000",
                     "--real-samples", "5000", "--split", "test", "--cache-dir", str(tmp_path / "cache")]) == 0
        scores[step] = json.loads(capsys.readouterr().out)["metrics"]
    assert scores[300]["fid"] < scores[50]["fid"] / 2
    assert scores[300]["kid_mean"] < scores[50]["kid_mean"] / 2
    assert main(["report", str(run)]) == 0
