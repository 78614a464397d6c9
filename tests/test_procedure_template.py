"""A third-party procedure: ``examples/procedure-template`` (the relativistic average GAN) is found
through the ``ganforge`` entry-point group once pip has installed it, trains from a config with no
change to ganforge, and is forgotten once removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, TINY
from tests.templates import ganforge as _ganforge
from tests.templates import installed_copy, run_its_tests

TEMPLATE = REPO / "examples" / "procedure-template"
DIST = "ganforge-ragan-example"


@pytest.mark.slow  # pip install + uninstall and four interpreters: about 40 s
def test_a_third_party_procedure_is_installed_used_from_a_config_and_removed(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    with installed_copy(TEMPLATE, DIST, tmp_path) as build:
        listing = _ganforge("plugins", env=subprocess_env, cwd=tmp_path)
        assert listing.returncode == 0, listing.stderr
        assert f"example-ragan  [{DIST} 0.1.0]  ganforge_ragan_example.ragan" in listing.stdout
        assert "procedure      example-ragan" in listing.stdout
        config = tmp_path / "ragan.toml"
        config.write_text('[procedure]\nname = "example-ragan"\nn_critic = 2\n')
        tiny = [arg for item in [*TINY, "train.steps=2"] for arg in ("--set", item)]
        train = _ganforge("train", str(config), "--out", str(tmp_path / "run"), *tiny, env=subprocess_env,
                          cwd=tmp_path)
        assert train.returncode == 0, train.stderr
        assert 'name = "example-ragan"' in (tmp_path / "run" / "config.toml").read_text()
        tests = run_its_tests(build, subprocess_env)
        assert tests.returncode == 0, tests.stdout + tests.stderr
    again = _ganforge("train", str(config), "--out", str(tmp_path / "run2"), *tiny, env=subprocess_env, cwd=tmp_path)
    assert again.returncode == 2 and "unknown procedure 'example-ragan'" in again.stderr
    assert not (tmp_path / "run2").exists()
