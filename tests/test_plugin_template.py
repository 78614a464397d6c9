"""The plugin author kit: ``examples/plugin-template`` is a real distribution that ganforge finds
through the ``ganforge`` entry-point group once pip has installed it, and forgets once removed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY
from tests.templates import ganforge as _ganforge
from tests.templates import installed_copy
from tests.templates import pip as _pip

TEMPLATE = REPO / "examples" / "plugin-template"
DIST = "ganforge-hinge-example"


@pytest.fixture
def installed_template(tmp_path: Path) -> Iterator[Path]:
    with installed_copy(TEMPLATE, DIST, tmp_path) as build:
        yield build


def test_template_is_listed_trains_and_is_forgotten_once_uninstalled(
    installed_template: Path, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    listing = _ganforge("plugins", env=subprocess_env, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert f"example-hinge  [{DIST} 0.1.0]  ganforge_hinge_example.hinge" in listing.stdout
    assert "loss           example-hinge" in listing.stdout

    config = tmp_path / "hinge.toml"
    config.write_text('[loss]\nname = "example-hinge"\nmargin = 1.0\n')
    tiny = [arg for item in [*TINY, "train.steps=1"] for arg in ("--set", item)]
    run = tmp_path / "run"
    train = _ganforge("train", str(config), "--out", str(run), *tiny, env=subprocess_env, cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    assert 'name = "example-hinge"' in (run / "config.toml").read_text()
    assert (run / "checkpoints" / "step-00000001" / "weights.safetensors").is_file()

    removed = _pip("uninstall", "-y", "-q", DIST)
    assert removed.returncode == 0, removed.stderr
    again = _ganforge("train", str(config), "--out", str(tmp_path / "run2"), *tiny, env=subprocess_env, cwd=tmp_path)
    assert again.returncode == 2
    assert "unknown loss 'example-hinge'" in again.stderr
    assert "Traceback" not in again.stderr
    assert not (tmp_path / "run2").exists()  # nothing written before the config was valid


def test_template_tests_pass_against_this_checkout(installed_template: Path, subprocess_env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TEMPLATE / "tests")],
                            capture_output=True, text=True, env=subprocess_env, cwd=TEMPLATE, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
