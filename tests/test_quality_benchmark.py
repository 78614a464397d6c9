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
def test_the_cpu_scale_runs_end_to_end_in_its_quick_mode(tmp_path, mnist_root, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
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
    # each entry names the judge that scored it, the kept one too
    assert report["models"]["stylegan"]["classifier"] == first["classifier"]
    assert report["models"]["cdcgan"]["classifier"] == report["classifier"]
    assert report["models"]["stylegan"]["machine"] == first["device"]
    # a run stopped by a user's signal (not the budget) exits 128 + 15 and leaves the results as they were
    import signal

    from ganforge import Trainer

    fit = Trainer.fit

    def stopped_by_the_user(self: Trainer) -> object:
        result = fit(self)
        self.stopped_by = int(signal.SIGTERM)  # as the engine records a SIGTERM that arrived during fit()
        return result

    monkeypatch.setattr(Trainer, "fit", stopped_by_the_user)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(q.Interrupted) as stop:
        q.main([*common, "--models", "cdcgan"])
    assert stop.value.code == 143 and "[cdcgan] stopped by SIGTERM at step 8" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


class SignalledTrainer:
    """Stops as the engine does on SIGTERM (records it, returns); ``kill`` sends one as a user would."""

    def __init__(self, out, *, wait: bool, kill: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.out, self.wait, self.kill, self.step, self.stopped_by = out, wait, kill, 0, None

    def fit(self) -> None:
        import os
        import signal
        import time

        got: list[int] = []
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
        try:
            if self.kill:
                os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 10
            while self.wait and not got and time.monotonic() < deadline:
                self.step += 1
                time.sleep(0.002)
        finally:
            signal.signal(signal.SIGTERM, previous)
        self.stopped_by = got[0] if got else None


def test_fit_within_tells_the_budget_from_a_users_signal(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert q.fit_within(SignalledTrainer(tmp_path, wait=True), 0.05, "m") is True  # the budget stopped it
    assert q.fit_within(SignalledTrainer(tmp_path, wait=False), 5.0, "m") is False  # it finished in time
    assert q.fit_within(SignalledTrainer(tmp_path, wait=False), None, "m") is False  # no budget
    with pytest.raises(q.Interrupted) as stop:
        q.fit_within(SignalledTrainer(tmp_path, wait=True, kill=True), 5.0, "m")
    assert stop.value.code == 143
    assert f"[m] stopped by SIGTERM at step 0, not by the time budget: no results written (the last checkpoint " \
           f"is in {tmp_path}/checkpoints)" in capsys.readouterr().err


def test_the_summary_gives_each_models_judge_when_the_judges_differ() -> None:
    judge = {"test_accuracy": 0.9931, "real_test_confident": 0.9681}
    model = {"steps": 10, "train_seconds": 1.0, "confident": 0.9, "min_class_fraction": 0.08, "passed": True,
             "grid": "g.png", "classifier": judge}
    report = {"scale": "cpu", "device": "cpu", "torch": "2", "date": "2026-12-03T00:00", "threshold": 0.9,
              "command": "c", "classifier": judge, "models": {"cdcgan": model, "pggan": dict(model)}}
    one = q.markdown(report)
    assert "test accuracy 0.9931; 96.8% of real test digits confident" in one and "judge (test acc." not in one
    report["models"]["pggan"] = {**model, "classifier": {"test_accuracy": 0.9923, "real_test_confident": 0.9672}}
    two = q.markdown(report)
    assert "judge (test acc. / real confident)" in two
    assert "| True | 0.9931 / 0.968 |" in two and "| True | 0.9923 / 0.967 |" in two and "machine |" not in two
    report["models"]["pggan"]["machine"] = "another cpu"
    assert "| True | 0.9923 / 0.967 | another cpu |" in q.markdown(report)
