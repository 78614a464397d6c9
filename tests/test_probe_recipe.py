"""benchmarks/probe_recipe.py: a recipe with overrides, trained briefly and judged at every checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import probe_recipe as p


@pytest.mark.slow
def test_a_quick_probe_judges_every_checkpoint_with_the_overrides_applied(tmp_path, mnist_root) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "probe.json"
    threads = torch.get_num_threads()
    common = ["--quick", "--mnist", str(mnist_root), "--judge-cache", str(tmp_path / "judges"), "--threads", "1"]
    assert p.main(["stylegan", "--steps", "6", "--every", "3", "--set", "optim.g.lr=3e-3",
                   "--keep", str(tmp_path / "run"), "--out", str(out), *common]) == 0
    report = json.loads(out.read_text())
    assert torch.get_num_threads() == threads  # --threads 1 held for the probe only
    assert report["steps"] == 6 and report["threads"] == 1 and report["overrides"] == ["optim.g.lr=3e-3"]
    assert [c["step"] for c in report["curve"]] == [3, 6]
    assert all(0.0 <= c["confident"] <= 1.0 for c in report["curve"])
    # the override reached the run that was trained, and the schedule is the probe's
    import tomllib

    config = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert config["optim"]["g"]["lr"] == 3e-3 and config["optim"]["d"]["lr"] != 3e-3  # only the one asked
    assert config["train"]["steps"] == 6 and config["output"]["keep_last"] == 0


def test_a_bad_override_is_named_and_nothing_is_trained(tmp_path, capsys, mnist_root) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "probe.json"
    assert p.main(["stylegan", "--quick", "--mnist", str(mnist_root), "--set", "optim.g.lr=-1",
                   "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "lr" in err and "-1" in err and not out.exists()


def test_a_probe_may_not_write_into_the_results(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        p.main(["stylegan", "--out", str(p.REPO / "benchmarks" / "results" / "cpu" / "probe.json")])
