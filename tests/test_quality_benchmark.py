"""The scoring of benchmarks/quality_mnist.py on hand-made classifier outputs (the benchmark
itself needs a GPU; `python benchmarks/quality_mnist.py --quick --out DIR` smoke-runs it on a CPU)."""

from __future__ import annotations

import pytest
import torch

from benchmarks import quality_mnist as q


def one_hot_probs(labels: list[int], confidence: float) -> torch.Tensor:
    p = torch.full((len(labels), 10), (1 - confidence) / 9)
    p[torch.arange(len(labels)), torch.tensor(labels)] = confidence
    return p


def test_judge_counts_confident_samples_per_class_and_conditional_accuracy() -> None:
    labels = [k % 10 for k in range(100)]
    probs = torch.cat([one_hot_probs(labels[:90], 0.95), one_hot_probs(labels[90:], 0.5)])
    asked = torch.tensor(labels)
    asked[:5] = (asked[:5] + 1) % 10  # 5 samples of the wrong class
    out = q.judge(probs, asked)
    assert out["confident"] == pytest.approx(0.9)
    assert out["class_fractions"] == pytest.approx([0.09] * 10) and out["min_class_fraction"] == pytest.approx(0.09)
    assert out["conditional_accuracy"] == pytest.approx(0.95)
    assert out["checks"] == {"confident": True, "min_class_fraction": True, "conditional_accuracy": True}
    assert out["passed"]


def test_judge_fails_a_collapsed_generator() -> None:
    out = q.judge(one_hot_probs([3] * 50, 0.99), None)
    assert out["confident"] == 1.0 and out["min_class_fraction"] == 0.0
    assert out["checks"] == {"confident": True, "min_class_fraction": False} and not out["passed"]


def test_conditional_grid_has_one_column_per_class() -> None:
    asked = torch.arange(200) % 10
    x = asked.float()[:, None, None, None].expand(-1, 1, 2, 2)
    g = q.grid(x, asked)
    assert g.shape == (100, 1, 2, 2)
    assert torch.equal(g[:, 0, 0, 0].reshape(10, 10), torch.arange(10.0).expand(10, 10))


@pytest.mark.slow
def test_the_cpu_scale_runs_end_to_end_in_its_quick_mode(tmp_path, mnist_root) -> None:  # type: ignore[no-untyped-def]
    """--scale cpu --quick: the CPU recipes (tiny sizes, a few steps), the judge, the curve, FID/KID with
    their fingerprint and floor, JSON and Markdown (what CI runs of the full CPU results)."""
    import json

    judges = tmp_path / "judges"
    common = ["--scale", "cpu", "--quick", "--mnist", str(mnist_root), "--out", str(tmp_path),
              "--classifier-epochs", "1", "--judge-cache", str(judges)]
    assert q.main([*common, "--models", "cdcgan", "stylegan"]) == 0
    report = json.loads((tmp_path / "quality_mnist.json").read_text())
    assert "cached" not in report["classifier"] and len(list(judges.glob("mnist-judge-*.pt"))) == 1
    assert report["scale"] == "cpu" and report["wall_seconds"] > 0 and report["cpu_seconds"] > 0
    for name in ("cdcgan", "stylegan"):
        m = report["models"][name]
        assert m["recipe"] == f"configs/cpu/{name}-mnist.toml" and m["steps"] == m["planned_steps"] == 8
        assert [p["step"] for p in m["curve"]] == [4, 8]
        assert m["fid_kid"]["fid"] > 0 and len(m["fid_kid"]["protocol_sha256"]) == 64
        assert 0 < m["fid_kid"]["real_train_digits"]["fid"] < m["fid_kid"]["fid"]  # real digits: the floor
        assert (tmp_path / m["grid"]).is_file()
    assert "conditional_accuracy" in report["models"]["cdcgan"]
    md = (tmp_path / "quality_mnist.md").read_text()
    assert f"| cdcgan | {report['models']['cdcgan']['date'][:10]}" in md and "Curve of stylegan" in md
    assert "| 8 | " in md
    # a second run of one model reuses the judge and keeps the other models' entries
    first = report
    assert q.main([*common, "--models", "cdcgan"]) == 0
    report = json.loads((tmp_path / "quality_mnist.json").read_text())
    assert report["classifier"]["cached"].startswith(str(judges))
    assert report["classifier"]["test_accuracy"] == first["classifier"]["test_accuracy"]
    assert list(report["models"]) == ["cdcgan", "stylegan"]
    assert report["models"]["stylegan"]["date"] == first["models"]["stylegan"]["date"]
    assert report["models"]["cdcgan"]["date"] > first["models"]["cdcgan"]["date"]
