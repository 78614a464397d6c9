"""``benchmarks/gpu_acceptance.py --dry-run``: every stage of the GPU acceptance run at tiny sizes on the
CPU, so that the script cannot rot between the rare sessions that have a GPU. The full dry run is what
CI runs (slow); the stage budgets are checked apart with a budget too small for most stages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_acceptance as ga

ROOT = Path(__file__).resolve().parents[1]
META = {"device", "measured_on", "dry_run", "driver", "torch", "cuda", "python", "date", "load_average",
        "budget_s", "command"}
OP_ROW = {"op", "shape", "dtype", "mode", "impl", "ms", "iqr_ms", "floor_ms", "gbps", "x_floor"}


@pytest.mark.slow
def test_the_dry_run_runs_every_stage_and_reports_every_field(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANFORGE_")}
    proc = subprocess.run([sys.executable, "benchmarks/gpu_acceptance.py", "--dry-run", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu-acceptance-cpu-dry-run.json").read_text())
    md = (tmp_path / "gpu-acceptance-cpu-dry-run.md").read_text()
    assert META <= set(report["meta"]) and report["meta"]["dry_run"] is True
    assert report["meta"]["measured_on"].startswith("cpu (dry run")  # marked as CPU values
    stages = report["stages"]
    assert set(stages) == set(ga.STAGES)
    for name, stage in stages.items():
        assert stage["status"] in ("done", "partial"), (name, stage)
        assert {"budget_s", "wall_s"} <= set(stage)
    # (0) the self-verification over the reference primitives, every op verified
    assert {op: e["ok"] for op, e in stages["build"]["verdict"].items()} == dict.fromkeys(ga.kr.OPS, True)
    # (a) the gpu tests are collected (they need a GPU to run)
    assert stages["gpu_tests"]["counts"]["collected"] >= 30
    # (b) every op, shape, dtype and pass, for eager and the kernels' Functions; compile where its budget lasted
    rows = stages["ops"]["rows"]
    timed = [r for r in rows if "ms" in r]
    for impl in ("eager", "ours-ref-prims"):
        got = {(r["op"], tuple(r["shape"]), r["dtype"], r["mode"]) for r in timed if r["impl"] == impl}
        want = {(op, tuple(s), d, m) for op in ga.kr.OPS for s in ga.DRY_SHAPES for d in ga.DTYPES
                for m in ["fwd", "fwd+bwd"] + (["double"] if op in ga.kr.DISCRIMINATOR_OPS else [])}
        assert got == want, impl
    assert all(OP_ROW <= set(r) and r["ms"] > 0 and r["x_floor"] > 0 for r in timed)
    compiled = [r for r in timed if r["impl"] == "compile"]
    assert compiled and all(r["compile_s"] > 0 for r in compiled)
    # (c) R1 step and iteration, reference and kernels
    models = {r["kernels"]: r for r in stages["models"]["rows"]}
    assert set(models) == {"ref", "cuda"} and all(r["r1_step_ms"] > 0 and r["iteration_ms"] > 0
                                                  for r in models.values())
    assert stages["models"]["r1_speedup"] > 0
    # (d) two runs of the same length; on the CPU both are the reference, so the weights agree exactly
    runs = stages["training"]["runs"]
    assert runs[0]["stopped_by_sigint"] and runs[0]["steps"] > 0 and runs[1]["steps"] == runs[0]["steps"]
    assert all(r["images_per_sec"] > 0 for r in runs)
    assert stages["training"]["generator_weights"]["max_abs_diff"] == 0.0
    for heading in ("## Build and self-verification", "## gpu-marked tests", "## Ops", "## StyleGAN steps",
                    "## Training"):
        assert heading in md
    assert "| bias_act | 4x8x4x4 | fp32 | double | ours-ref-prims |" in md


def test_a_budget_too_small_for_the_stages_still_writes_what_was_measured(tmp_path: Path) -> None:
    report = ga.run(ga.parse(["--dry-run", "--budget", "2.5", "--out", str(tmp_path), "--no-compile"]))
    stages = report["stages"]
    assert stages["build"]["status"] == "done"  # about a second: the verification over the reference primitives
    later = [stages[name]["status"] for name in ("ops", "models", "training")]
    assert set(later) == {"skipped"}, later
    assert stages["gpu_tests"]["status"] in ("partial", "skipped")
    data = json.loads(Path(report["paths"][0]).read_text())
    assert data["stages"]["training"]["note"] == "the run's budget was spent"
    assert "| training | skipped |" in Path(report["paths"][1]).read_text()


def test_a_pass_slower_than_the_budget_left_is_timed_fewer_times_or_skipped() -> None:
    assert ga.kr.reps_that_fit(0.001, 10.0, 5, 30) == 30  # fits: every rep
    assert ga.kr.reps_that_fit(3.4, 60.0, 5, 30) == 12  # eager upfirdn2d's double backward on an H200
    assert ga.kr.reps_that_fit(3.4, 20.0, 5, 30) == 0  # not even one after the warm-up
    assert ga.kr.reps_that_fit(0.0, 1.0, 5, 30) == 30


def test_stages_and_ops_narrow_a_run(tmp_path: Path) -> None:
    args = ga.parse(["--dry-run", "--stages", "build,ops", "--ops", "pixel_norm", "--no-compile",
                     "--stage-budget", "ops=30", "--out", str(tmp_path)])
    report = ga.run(args)
    stages = report["stages"]
    assert [n for n, st in stages.items() if st["status"] != "not run"] == ["build", "ops"]
    assert stages["ops"]["budget_s"] == 30 + ga.DRY_BUDGETS["compile"]
    assert {r["op"] for r in stages["ops"]["rows"]} == {"pixel_norm"}


@pytest.mark.parametrize("argv", [["--stages", "build,gpu"], ["--ops", "adain,conv"], ["--stage-budget", "ops"],
                                  ["--stage-budget", "ops=-1"], ["--stage-budget", "fast=10"]])
def test_bad_narrowing_options_are_refused_naming_the_option(argv: list[str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ga.parse(argv)
    assert argv[0] in capsys.readouterr().err
