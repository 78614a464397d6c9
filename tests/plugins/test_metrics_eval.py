"""``ganforge eval``, the ``eval`` training callback and ``ganforge report`` on a tiny real MNIST run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ganforge import DataError, GanforgeError
from ganforge.cli import main
from ganforge_plugins.evaluation.pipeline import ReferenceCache, check_shapes, protocol_key

from tests.conftest import SHARED_DATA

MNIST = SHARED_DATA / "mnist"
pytestmark = pytest.mark.skipif(not MNIST.is_dir(), reason="real MNIST is not available")

RUN_CONFIG = """
[data]
name = "mnist"
root = "{root}"
limit = 256

[generator]
name = "dcgan"
base_channels = 8
latent_dim = 16

[discriminator]
name = "dcgan"
base_channels = 8

[train]
steps = 3
batch_size = 16

[output]
progress = false
log_every = 1
sample_every = 1
checkpoint_every = 2

[[callbacks]]
name = "eval"
every = 2
num_samples = 64
real_samples = 64
cache_dir = "{cache}"
metrics = [{{name = "fid"}}, {{name = "kid", subset_size = 32, subsets = 5}}, {{name = "is", splits = 2}},
           {{name = "pr"}}]
"""

EVAL_CONFIG = """
metrics = [{name = "fid"}, {name = "kid", subset_size = 100, subsets = 10}, {name = "is"}, {name = "pr"}]
batch_size = 128
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-step DCGAN run on 256 MNIST digits with the eval callback every 2 steps."""
    base = tmp_path_factory.mktemp("eval-run")
    config = base / "run.toml"
    config.write_text(RUN_CONFIG.format(root=MNIST, cache=base / "cache"))
    assert main(["train", str(config), "--out", str(base / "run")]) == 0
    return base / "run"


def records(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_callback_logs_metrics_with_the_losses_and_writes_its_protocol(run: Path) -> None:
    evals = [r for r in records(run) if "fid" in r]
    assert [r["step"] for r in evals] == [2, 3]  # every 2 steps, and once more at the end
    for r in evals:
        assert set(r) >= {"fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall"}
        assert float(r["fid"]) > 0 and 1.0 <= float(r["is_mean"]) <= 10.0
    protocol = json.loads((run / "eval-protocol.json").read_text())
    assert protocol["extractor"]["name"] == "mnist-classifier"  # picked from the data's class names
    assert len(protocol["extractor"]["weights_sha256"]) == 64
    assert protocol["real"]["samples"] == 64 and protocol["metrics"]["kid"]["subset_size"] == 32
    assert Path(protocol["reference_cache"]["path"]).is_file()


def evaluate(run: Path, tmp_path: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    config = tmp_path / "eval.toml"
    config.write_text(EVAL_CONFIG)
    argv = ["eval", str(run), "-c", str(config), "--real", f"mnist:{MNIST}", "--split", "test", "-n", "200",
            "--real-samples", "300", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out.json"),
            *extra]
    assert main(argv) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed == json.loads((tmp_path / "out.json").read_text())
    assert "eval: generated samples [" in captured.err and "] 200/200 images elapsed" in captured.err  # progress
    return printed


def test_eval_prints_every_number_with_its_protocol_and_reuses_the_reference(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = evaluate(run, tmp_path, capsys=capsys)
    metrics = first["metrics"]
    assert set(metrics) == {"fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall"}
    p = first["protocol"]
    assert p["extractor"]["name"] == "mnist-classifier" and len(p["extractor"]["weights_sha256"]) == 64
    assert "bilinear" in p["extractor"]["resize"]
    assert p["generated"]["step"] == 3 and p["generated"]["samples"] == 200 and p["generated"]["seed"] == 0
    assert p["generated"]["checkpoint"].endswith("step-00000003")
    assert p["real"]["dataset"] == "mnist" and p["real"]["split"] == "test" and p["real"]["samples"] == 300
    assert p["real"]["params"]["resolution"] == 32 and p["real"]["params"]["limit"] == 0  # not the run's 256
    assert p["metrics"]["kid"] == {"subsets": 10, "subset_size": 100, "degree": 3, "coef0": 1.0, "seed": 0,
                                   "gamma": None}
    assert p["reference_cache"]["hit"] is False
    second = evaluate(run, tmp_path, capsys=capsys)
    assert second["protocol"]["reference_cache"]["hit"] is True
    assert second["metrics"] == metrics  # same seeds, same reference: the same numbers
    third = evaluate(run, tmp_path, "--seed", "1", capsys=capsys)  # another real subset: another key
    assert third["protocol"]["reference_cache"]["key"] != first["protocol"]["reference_cache"]["key"]


def test_eval_refuses_too_few_samples_before_any_work(run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["eval", str(run), "--real", f"mnist:{MNIST}", "-n", "500", "--metrics", "fid,kid",
                   "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert "kid needs at least 1000 generated samples, got 500" in err
    assert not (tmp_path / "reference").exists()


def test_eval_names_unknown_metrics_and_extractors(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(run), "--metrics", "fid,fdi"]) == 2
    assert "unknown metric 'fdi'" in capsys.readouterr().err
    assert main(["eval", str(run), "--extractor", "incepton"]) == 2
    assert "did you mean 'inception'" in capsys.readouterr().err


def test_eval_refuses_an_extractor_for_other_images(run: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["eval", str(run), "--extractor", "cifar10-classifier", "--metrics", "fid", "-n", "10",
                   "--real-samples", "10", "--cache-dir", str(tmp_path)])
    assert status == 2
    assert "expects 3-channel images, got 1 channels" in capsys.readouterr().err


def test_mismatched_image_shapes_are_refused() -> None:
    with pytest.raises(DataError, match="real images are 1x28x28 but generated ones are 1x32x32"):
        check_shapes((1, 28, 28), (1, 32, 32))
    with pytest.raises(DataError, match="real images are 3x32x32 but generated ones are 1x32x32"):
        check_shapes((3, 32, 32), (1, 32, 32))


def test_the_reference_cache_is_keyed_by_the_whole_protocol(tmp_path: Path) -> None:
    cache = ReferenceCache(str(tmp_path))
    base = {"extractor": {"name": "x", "weights_sha256": "a" * 64}, "real": {"split": "train", "samples": 10}}
    other = {"extractor": {"name": "x", "weights_sha256": "b" * 64}, "real": {"split": "train", "samples": 10}}
    assert protocol_key(base) != protocol_key(other)
    calls: list[int] = []

    def compute() -> tuple[torch.Tensor, tuple[int, ...]]:
        calls.append(1)
        return torch.arange(6.0).view(3, 2), (1, 8, 8)

    first = cache.get_or_compute(base, compute)
    again = cache.get_or_compute(base, compute)
    assert len(calls) == 1 and again.hit and torch.equal(again.features, first.features) and again.shape == (1, 8, 8)
    cache.get_or_compute(other, compute)
    assert len(calls) == 2


def test_report_is_one_self_contained_page(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run)]) == 0
    page = (run / "report" / "index.html").read_text()
    assert page.count("<svg") >= 3  # losses, fid, kid, ...
    assert ">losses</text>" in page and ">fid</text>" in page
    assert page.count("data:image/png;base64,") == len(list((run / "samples").glob("step-*.png")))
    assert "[generator]" in page and "base_channels = 8" in page  # the resolved config
    assert "src='http" not in page and 'src="http' not in page and "<script" not in page
    assert (run / "report" / "samples-over-time.png").is_file()
    assert (run / "report" / "step-00000003.png").is_file()


def test_report_refuses_a_directory_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_callback_refuses_too_few_samples_before_training(tmp_path: Path) -> None:
    from ganforge import Trainer, load_config

    config = load_config(None, ["data.name=mnist", f"data.root={MNIST}", "data.limit=64",
                                'callbacks=[{name = "eval", num_samples = 100}]'])
    with pytest.raises(GanforgeError, match="kid needs at least 500 generated samples, got 100"):
        Trainer(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_eval_refuses_an_out_directory_before_any_work(run: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "result.json").mkdir()
    status = main(["eval", str(run), "--metrics", "fid", "-n", "10", "--real-samples", "10",
                   "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "result.json")])
    assert status == 2 and "is a directory; expected a file for the JSON result" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()  # refused before the reference features were computed


def test_eval_refuses_a_translation_dataset_as_real_images(run: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["eval", str(run), "--metrics", "fid", "-n", "10", "--real-samples", "10",
                   "--real", f"edges2mnist:{MNIST}", "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and "real dataset 'edges2mnist'" in err and "is not a set of images" in err
    assert "Traceback" not in err


def test_eval_warns_when_the_real_data_has_fewer_images_than_asked(run: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    folder = tmp_path / "few"
    folder.mkdir()
    for i in range(3):
        Image.new("L", (28, 28), 60 * i).save(folder / f"{i}.png")
    status = main(["eval", str(run), "--metrics", "fid", "-n", "10", "--real-samples", "200",
                   "--real", f"image-folder:{folder}", "--cache-dir", str(tmp_path / "cache")])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "has 3 images, fewer than the 200 asked for" in captured.err and "singular below" in captured.err
    assert any("fewer than the 200" in w for w in json.loads(captured.out)["warnings"])
