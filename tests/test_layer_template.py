"""A third-party layer: ``examples/layer-template`` (StyleGAN2's modulated convolution) is found through
the ``ganforge`` entry-point group once pip has installed it, is used by ganforge's StyleGAN generator
from a config with no change to ganforge, and is forgotten once removed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY
from tests.templates import ganforge as _ganforge
from tests.templates import installed_copy, run_its_tests

TEMPLATE = REPO / "examples" / "layer-template"
DIST = "ganforge-modconv-example"
STYLEGAN = [*(item for item in TINY if "_channels" not in item), "train.steps=2", "generator.w_dim=16",
            "generator.mapping_layers=2", "generator.channel_base=64", "generator.channel_max=16",
            "discriminator.name=stylegan", "discriminator.channel_base=64", "discriminator.channel_max=16"]


@pytest.mark.slow  # pip install + uninstall and four interpreters: about 40 s
def test_a_third_party_layer_is_installed_used_by_a_stylegan_generator_and_removed(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    config = tmp_path / "stylegan2.toml"
    config.write_text('[generator]\nname = "stylegan"\nstyle = {name = "example-modulated-conv", demodulate = true}\n')
    sets = [arg for item in STYLEGAN for arg in ("--set", item)]
    with installed_copy(TEMPLATE, DIST, tmp_path) as build:
        listing = _ganforge("plugins", env=subprocess_env, cwd=tmp_path)
        assert listing.returncode == 0, listing.stderr
        assert f"example-modulated-conv  [{DIST} 0.1.0]  ganforge_modconv_example.modconv" in listing.stdout
        assert "layer          example-modulated-conv" in listing.stdout
        train = _ganforge("train", str(config), "--out", str(tmp_path / "run"), *sets, env=subprocess_env,
                          cwd=tmp_path)
        assert train.returncode == 0, train.stderr
        assert 'name = "example-modulated-conv"' in (tmp_path / "run" / "config.toml").read_text()
        # the trained generator holds the third party's layers, and no AdaIN: they replaced its convolutions
        probe = subprocess.run([sys.executable, "-c", (
            "import sys; from ganforge import load_run; g = load_run(sys.argv[1]).networks['generator']; "
            "kinds = {type(m).__name__ for m in g.modules()}; "
            "print('ModulatedConv2d' in kinds, 'AdaIN' in kinds, sum(p.numel() for p in g.parameters()))"),
            str(tmp_path / "run")], capture_output=True, text=True, env=subprocess_env, cwd=tmp_path, timeout=300)
        assert probe.returncode == 0, probe.stderr
        assert probe.stdout.split()[:2] == ["True", "False"], probe.stdout
        tests = run_its_tests(build, subprocess_env)
        assert tests.returncode == 0, tests.stdout + tests.stderr
    again = _ganforge("train", str(config), "--out", str(tmp_path / "run2"), *sets, env=subprocess_env, cwd=tmp_path)
    assert again.returncode == 2 and "unknown layer 'example-modulated-conv'" in again.stderr
    assert not (tmp_path / "run2").exists()
