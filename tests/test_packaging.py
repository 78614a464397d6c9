"""Both install forms work: the editable checkout the tests run from, and a built wheel."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import ganforge

from tests.conftest import REPO, TINY

FIRST_PARTY = {"digits", "idx", "image-folder", "dcgan", "gan-losses", "gaussian",
               "wgan-losses", "hinge-losses", "lsgan-losses", "weight-clipping", "wgan-gp", "r1-r2", "drift",
               "mixtures", "mlp", "lab",
               "cdcgan", "patchgan", "pggan", "stylegan",
               "domain-classifiers", "fid", "kid", "inception-score", "precision-recall", "inception", "eval",
               "report", "tensorboard",
               "uniform", "interpolate", "attribute-scorers", "interfacegan", "ganspace", "vector-arithmetic",
               "latent-transformer", "latent-commands",
               "unet", "resnet-generator", "stargan", "translation", "kernels"}


def test_first_party_plugins_are_declared_as_entry_points() -> None:
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="ganforge") if ep.dist.name == "ganforge"}
    assert set(eps) >= FIRST_PARTY
    assert all(value.startswith("ganforge_plugins.") for value in eps.values())


def test_the_tests_run_against_this_checkout() -> None:
    assert Path(ganforge.__file__).resolve().is_relative_to(REPO / "core")


def test_a_built_wheel_installs_and_runs(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy, so that the build leaves no build/ or egg-info in the checkout
    for name in ("core", "plugins"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist)], check=True, capture_output=True)
    (wheel,) = dist.glob("ganforge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ganforge/py.typed" in names and "ganforge_plugins/models/dcgan.py" in names
    assert "ganforge_plugins/metrics/weights/mnist-classifier.safetensors" in names  # the domain FID works offline
    # the CUDA sources travel with the wheel, so that the kernels build on first use after a wheel install
    assert {"ganforge_plugins/ops/csrc/ops.cpp", "ganforge_plugins/ops/csrc/upfirdn2d.cu"} <= set(names)
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONWARNINGS": "ignore"}
    where = subprocess.run([sys.executable, "-c", "import ganforge, ganforge_plugins.models.dcgan as m;"
                            "print(ganforge.__file__); print(m.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    assert all(line.startswith(str(site)) for line in where.stdout.split())
    listing = subprocess.run([sys.executable, "-m", "ganforge", "plugins"], capture_output=True, text=True, env=env,
                             cwd=tmp_path, check=True)
    assert "dcgan  [ganforge 0.1.0]" in listing.stdout
    args = [sys.executable, "-m", "ganforge", "train", "--out", str(tmp_path / "run")]
    for item in TINY:
        args += ["--set", item]
    train = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    assert (tmp_path / "run" / "checkpoints" / "step-00000003" / "weights.safetensors").is_file()
