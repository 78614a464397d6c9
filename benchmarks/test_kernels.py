"""The fused-ops benchmark in its quick CPU mode, so that it cannot rot where there is no GPU.

Tiny shapes on the reference path (``eager``) and on the CUDA backend's Functions over plain-PyTorch
primitives (``ours-ref-prims``), timed with pytest-benchmark; and the report script end to end into a
temporary directory. GPU numbers come from ``python benchmarks/kernels_report.py`` on a CUDA machine
(see its docstring); nothing here writes to benchmarks/results/.
"""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import kernels_report as kr


@pytest.fixture(autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("op", kr.OPS)
@pytest.mark.parametrize("impl", ["eager", "ours-ref-prims"])
def test_tiny_forward_backward_of_each_op(benchmark, op: str, impl: str) -> None:  # type: ignore[no-untyped-def]
    case = kr.make_inputs(op, (4, 8, 8, 8), torch.float32, "cpu")
    fn = kr.implementations("cpu", None, with_compile=False)[impl](op)
    y = fn(case["x"], *case["args"], **case["kwargs"])
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    mode = "double" if op in kr.DISCRIMINATOR_OPS else "fwd+bwd"
    (dx,) = benchmark.pedantic(kr.run_pass(fn, case, mode, w), rounds=5, iterations=1, warmup_rounds=1)
    assert dx.shape == case["x"].shape and torch.isfinite(dx).all()
    # the two implementations agree on the gradient they time
    (ref,) = kr.run_pass(kr.implementations("cpu", None, with_compile=False)["eager"](op), case, mode, w)()
    torch.testing.assert_close(dx, ref, rtol=1e-4, atol=1e-5)


def test_memory_floor_counts_the_passes_each_op_needs() -> None:
    shape, size = (2, 4, 8, 8), 2 * 4 * 8 * 8 * 4  # fp32 bytes
    assert kr.floor_bytes("adain", shape, torch.float32, "fwd") == 2 * size  # read x, write y
    assert kr.floor_bytes("adain", shape, torch.float32, "fwd+bwd") == 5 * size  # + read x, dy, write dx
    assert kr.floor_bytes("bias_act", shape, torch.bfloat16, "fwd") == size  # half the bytes per element
    assert kr.floor_bytes("upfirdn2d", shape, torch.float32, "fwd") == size + size // 4  # 2x down: a quarter out
    assert kr.floor_bytes("minibatch_stddev", shape, torch.float32, "fwd") == size + 2 * 5 * 8 * 8 * 4


def test_quick_report_writes_json_and_markdown_with_every_case(tmp_path) -> None:  # type: ignore[no-untyped-def]
    args = kr.parse(["--quick", "--no-compile", "--device", "cpu", "--out", str(tmp_path), "--models", "--reps", "2"])
    report = kr.run(args)
    data = json.loads((tmp_path / report["paths"][0].split("/")[-1]).read_text())
    assert {"device", "torch", "cuda", "date", "copy_bandwidth_gbps"} <= set(data["meta"])
    assert data["meta"]["copy_bandwidth_gbps"] > 0
    timed = [r for r in data["rows"] if "ms" in r]
    assert not [r for r in data["rows"] if "error" in r], [r for r in data["rows"] if "error" in r][:2]
    for op in kr.OPS:
        for impl in ("eager", "ours-ref-prims"):
            modes = {r["mode"] for r in timed if r["op"] == op and r["impl"] == impl}
            assert modes == {"fwd", "fwd+bwd"} | ({"double"} if op in kr.DISCRIMINATOR_OPS else set())
    assert all(r["ms"] > 0 and r["x_floor"] > 0 and r["gbps"] > 0 for r in timed)
    steps = {(r["model"], r["step"]) for r in data["models"]}
    assert steps == {("stylegan", "G step"), ("stylegan", "D step"), ("stylegan", "R1"),
                     ("pggan", "G step"), ("pggan", "D step"), ("pggan", "WGAN-GP")}
    md = (tmp_path / report["paths"][1].split("/")[-1]).read_text()
    assert "| upfirdn2d | 4x8x8x8 | fp32 | double | eager |" in md


def test_an_nvlabs_checkout_that_cannot_load_is_its_rows_error_not_the_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # a checkout path without torch_utils (on a GPU machine: a plugin that does not build) must leave every other
    # implementation's rows standing, and say why NVlabs' are missing
    args = kr.parse(["--quick", "--no-compile", "--device", "cpu", "--out", str(tmp_path), "--reps", "1",
                     "--ops", "bias_act", "adain", "--nvlabs", str(tmp_path / "no-checkout")])
    rows = kr.bench_ops(args, "cpu", 1.0)
    nv = [r for r in rows if r["impl"] == "nvlabs"]
    assert nv and all("No module named 'torch_utils'" in r["error"] for r in nv)
    assert {r["op"] for r in nv} == {"bias_act"}  # NVlabs has no adain: no row, not an error
    assert {r["impl"] for r in rows if "ms" in r} == {"eager", "ours-ref-prims"}
