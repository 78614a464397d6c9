"""Self-verification of the CUDA kernels, driven on the CPU.

The verification runs every op's cases over a *primitives* object. With :class:`RefPrimitives` (the
kernels' contract in plain PyTorch) every op must verify; with deliberately wrong primitives (an
off-by-one padding, a wrong gain, a missing second-order term, a wrong result only for channels-last
or only for one dtype, ...) exactly the ops that use the wrong primitive must be disabled, with the
failing case named. Then the verdict cache (trusted only when intact and current), the corrupt build
cache, and what ``auto``, ``cuda`` and ``ganforge kernels status`` make of a disabled op.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from ganforge import ConfigError
from ganforge_plugins import ops
from ganforge_plugins.ops import cuda_backend as cb
from ganforge_plugins.ops import extension, verify

pytestmark = pytest.mark.usefixtures("one_thread")

REF = cb.RefPrimitives


def run(prim: object) -> dict[str, verify.Verdict]:
    return cb.verify_ops(prim, "cpu")


# -- the correct primitives verify ---------------------------------------------------------------------------------


def test_the_reference_primitives_verify_every_op_in_every_dtype() -> None:
    verdicts = run(REF())
    assert list(verdicts) == list(ops.OPS)
    for name, v in verdicts.items():
        assert v.ok, v.failure
        passes = 3 if cb.BY_NAME[name].double else 2
        assert v.checks == len(cb.BY_NAME[name].cases()) * len(verify.DTYPES) * passes, name


def test_the_cases_reach_the_kernels_edge_cases() -> None:
    """What the issue lists: 1x1 and odd spatial sizes, batch 1, channel counts off the vector width,
    non-dense and channels-last inputs, up/down 1, 2 and 4, asymmetric and negative padding."""
    every = [(name, c) for name, op in cb.BY_NAME.items() for c in op.cases()]
    for name, op in cb.BY_NAME.items():
        cases = op.cases()
        shapes = [tuple(c.inputs[0].shape) for c in cases]  # type: ignore[union-attr]
        four_d = [s for s in shapes if len(s) == 4]
        assert any(s[2:] == (1, 1) for s in four_d), name
        assert any(s[2] % 2 and s[3] % 2 for s in four_d), name
        assert any(s[0] == 1 for s in shapes), name
        assert any(s[1] % 4 for s in four_d), name
        assert {"channels-last", "strided"} <= {c.layout for c in cases}, name
    factors = {f for n, c in every if n == "upfirdn2d" for k in ("up", "down")
               for f in ([c.kwargs.get(k, 1)] if isinstance(c.kwargs.get(k, 1), int) else c.kwargs[k])}
    assert {1, 2, 4} <= factors
    pads = [c.kwargs.get("padding", 0) for n, c in every if n == "upfirdn2d"]
    assert any(isinstance(p, tuple) and len(set(p)) > 1 for p in pads)
    assert any(isinstance(p, tuple) and min(p) < 0 for p in pads)


# -- wrong primitives are caught, each disabling exactly its op ------------------------------------------------------


class OffByOnePadding(REF):
    """upfirdn2d shifted down by one row: the top padding one too many, the bottom one too few."""

    @staticmethod
    def upfirdn2d(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip):  # type: ignore[no-untyped-def]
        return REF.upfirdn2d(x, f, upx, upy, downx, downy, px0, px1, py0 + 1, py1 - 1, flip)


class GainTwiceInTheGradient(REF):
    """bias_act's forward is right; its first derivative applies the gain twice."""

    @staticmethod
    def bias_act(x, b, dy, ddx, mode, dim, act, alpha, gain, clamp):  # type: ignore[no-untyped-def]
        out = REF.bias_act(x, b, dy, ddx, mode, dim, act, alpha, gain, clamp)
        return out * gain if mode == 1 else out


class NoSecondOrderTerm(REF):
    """bias_act's second derivative (mode 2) left out: R1 through a smooth activation would lose a term."""

    @staticmethod
    def bias_act(x, b, dy, ddx, mode, dim, act, alpha, gain, clamp):  # type: ignore[no-untyped-def]
        if mode == 2:
            return torch.zeros_like(x)
        return REF.bias_act(x, b, dy, ddx, mode, dim, act, alpha, gain, clamp)


class WrongForChannelsLast(REF):
    """pixel_norm right for contiguous inputs, wrong (sum of squares for the mean) for channels-last ones."""

    @staticmethod
    def pixel_norm(x, dy, eps):  # type: ignore[no-untyped-def]
        out = REF.pixel_norm(x, dy, eps)
        if x.shape[1] > 1 and x.stride(1) == 1 and not x.is_contiguous():
            return out / x.shape[1] ** 0.5
        return out


class WrongInBfloat16(REF):
    """minibatch_stddev's statistic with the unbiased variance, for bfloat16 inputs only."""

    @staticmethod
    def mbstd_fwd(x, G, F_, eps):  # type: ignore[no-untyped-def]
        out = REF.mbstd_fwd(x, G, F_, eps)
        return out * (G / max(G - 1, 1)) ** 0.5 if x.dtype == torch.bfloat16 else out


class NoStrengthGradient(REF):
    """style_epilogue's backward without the noise strength's gradient."""

    @staticmethod
    def plane_norm_bwd(dy, x, noise, strength, bias, scale, mean, rstd, style, alpha, gain):  # type: ignore[no-untyped-def]
        out = REF.plane_norm_bwd(dy, x, noise, strength, bias, scale, mean, rstd, style, alpha, gain)
        return [*out[:4], torch.zeros_like(out[4])]


class AdainScaleGradientNegated(REF):
    """AdaIN's (not the epilogue's) gradient of the style scale with the wrong sign."""

    @staticmethod
    def plane_norm_bwd(dy, x, noise, strength, bias, scale, mean, rstd, style, alpha, gain):  # type: ignore[no-untyped-def]
        out = REF.plane_norm_bwd(dy, x, noise, strength, bias, scale, mean, rstd, style, alpha, gain)
        return out if style else [out[0], -out[1], *out[2:]]


class RaisesOnOddWidths(REF):
    """A kernel launch that fails for odd widths (as a vectorised load would)."""

    @staticmethod
    def upfirdn2d(x, f, *args):  # type: ignore[no-untyped-def]
        if x.shape[-1] % 2:
            raise RuntimeError("CUDA error: misaligned address\nCompile with TORCH_USE_CUDA_DSA")
        return REF.upfirdn2d(x, f, *args)


class SlightlyOffInFloat32(REF):
    """adain's forward off by 1e-3 relative in float32 only: inside bfloat16's tolerance, not float32's."""

    @staticmethod
    def plane_norm_fwd(x, noise, strength, bias, scale, shift, style, alpha, gain, eps):  # type: ignore[no-untyped-def]
        y, mean, rstd = REF.plane_norm_fwd(x, noise, strength, bias, scale, shift, style, alpha, gain, eps)
        return [y * (1 + 1e-3) if x.dtype == torch.float32 and not style else y, mean, rstd]


WRONG = [
    (OffByOnePadding, {"upfirdn2d"}, ["case '1x1 image up 2'", "forward"]),
    (GainTwiceInTheGradient, {"bias_act"}, ["case 'lrelu 1x1x1x1'", "in float64, backward"]),
    (NoSecondOrderTerm, {"bias_act"}, ["case 'tanh 2x7x13x11' [strided]", "double backward"]),
    (WrongForChannelsLast, {"pixel_norm"}, ["case '2x7x13x11' [channels-last]", "forward"]),
    (WrongInBfloat16, {"minibatch_stddev"}, ["[channels-last] in bfloat16, forward"]),
    (NoStrengthGradient, {"style_epilogue"}, ["case '1x5x4x4 noise [1,1,H,W]'", "backward",
                                               "(gradient of argument 3)"]),
    (AdainScaleGradientNegated, {"adain"}, ["case '1x5x3x3' [channels-last] in float64, backward",
                                            "(gradient of argument 2)"]),
    (RaisesOnOddWidths, {"upfirdn2d"}, ["case '1x1 image up 2'", "RuntimeError: CUDA error: misaligned address"]),
    (SlightlyOffInFloat32, {"adain"}, ["in float32, forward: error 0.001", "> tolerance 2e-05"]),
]


@pytest.mark.parametrize(("wrong", "disabled", "named"), WRONG, ids=[w[0].__name__ for w in WRONG])
def test_a_wrong_primitive_disables_exactly_its_op_naming_the_case(wrong, disabled, named) -> None:  # type: ignore[no-untyped-def]
    verdicts = run(wrong())
    assert {name for name, v in verdicts.items() if not v.ok} == disabled
    for name in disabled:
        message = verdicts[name].failure
        for part in named:
            assert part in message, (part, message)
    assert all(v.failure is None for v in verdicts.values() if v.ok)


def test_the_wrong_primitives_are_distinct_and_cover_the_issue_list() -> None:
    assert len({w for w, _, _ in WRONG}) >= 6
    kinds = {w.__name__ for w, _, _ in WRONG}
    assert {"OffByOnePadding", "GainTwiceInTheGradient", "NoSecondOrderTerm", "WrongForChannelsLast",
            "WrongInBfloat16"} <= kinds


# -- the verdict cache ----------------------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GANFORGE_KERNELS_CACHE", str(tmp_path / "kernels"))
    return tmp_path / "kernels"


def counting(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []
    real = cb.verify_ops

    def spy(prim, device, ops=cb.KERNEL_OPS):  # type: ignore[no-untyped-def]
        calls.append(prim)
        return real(prim, device, ops)

    monkeypatch.setattr(cb, "verify_ops", spy)
    return calls


def built(cache: Path, module: object = None) -> extension.Built:
    (cache / "abc123").mkdir(parents=True, exist_ok=True)
    return extension.Built(module or REF(), "abc123", cache / "abc123")


CPU = {"device": torch.device("cpu"), "label": "Test CPU (sm_00)"}


def test_a_verdict_is_cached_beside_the_build_and_reused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting(monkeypatch)
    b = built(cache)
    first = cb.verified(b, **CPU)
    assert len(calls) == 1 and all(e["ok"] for e in first["ops"].values())
    data = json.loads((b.directory / extension.VERDICT).read_text())
    assert data["build_key"] == "abc123" and data["verify_key"] == extension.verify_key()
    assert set(data["devices"]["Test CPU (sm_00)"]["ops"]) == set(ops.OPS)
    again = cb.verified(b, **CPU)
    assert len(calls) == 1 and again == first  # trusted: not run again
    cb.verified(b, force=True, **CPU)  # ganforge kernels verify
    assert len(calls) == 2
    cb.verified(b, device=torch.device("cpu"), label="Another GPU (sm_90)")  # another device is verified apart
    assert len(calls) == 3
    assert set(json.loads((b.directory / extension.VERDICT).read_text())["devices"]) == {
        "Test CPU (sm_00)", "Another GPU (sm_90)"}


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "stale verify key", "other build key",
                                    "other schema", "an op missing", "ok not a bool"])
def test_a_corrupt_or_stale_verdict_is_verified_again_not_trusted(cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  damage: str) -> None:
    calls = counting(monkeypatch)
    b = built(cache, module=WrongInBfloat16())
    cb.verified(b, **CPU)
    path = b.directory / extension.VERDICT
    text = path.read_text()
    data = json.loads(text)
    entry = data["devices"]["Test CPU (sm_00)"]
    # a forged verdict that would enable the wrong op, damaged in one way
    entry["ops"]["minibatch_stddev"] = {"ok": True, "checks": 1, "seconds": 0.0, "failure": None}
    if damage == "garbage":
        path.write_bytes(b"\x00\xffnot json")
    elif damage == "truncated":
        path.write_text(json.dumps(data)[: len(text) // 2])
    elif damage == "empty":
        path.write_text("")
    else:
        if damage == "stale verify key":
            data["verify_key"] = "0" * 20
        elif damage == "other build key":
            data["build_key"] = "def456"
        elif damage == "other schema":
            data["schema"] = 0
        elif damage == "an op missing":
            del entry["ops"]["upfirdn2d"]
        elif damage == "ok not a bool":
            entry["ops"]["minibatch_stddev"]["ok"] = "yes"
        path.write_text(json.dumps(data))
    verdict = cb.verified(b, **CPU)
    assert len(calls) == 2  # verified again
    assert not verdict["ops"]["minibatch_stddev"]["ok"]  # the forged entry was not trusted
    assert extension.read_verdict("abc123", "Test CPU (sm_00)", list(ops.OPS)) == {
        k: v for k, v in verdict.items() if k != "device"}  # and the file is whole again


def test_an_intact_forged_verdict_would_be_trusted_so_the_damage_tests_can_fail(cache: Path,
                                                                               monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = counting(monkeypatch)
    b = built(cache, module=WrongInBfloat16())
    cb.verified(b, **CPU)
    path = b.directory / extension.VERDICT
    data = json.loads(path.read_text())
    data["devices"]["Test CPU (sm_00)"]["ops"]["minibatch_stddev"]["ok"] = True
    path.write_text(json.dumps(data))
    assert cb.verified(b, **CPU)["ops"]["minibatch_stddev"]["ok"] and len(calls) == 1


def test_a_corrupt_binary_in_the_build_cache_is_rebuilt(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached binary that does not load (truncated, a killed build) is removed and built again once."""
    monkeypatch.setattr(extension, "toolchain_problem", lambda **kw: None)
    monkeypatch.setattr(extension, "device_archs", lambda: "9.0")
    loads: list[list[str]] = []

    def fake_load(key: str, directory: Path, arch: str, verbose: bool) -> object:
        loads.append(sorted(p.name for p in directory.iterdir()))
        so = directory / f"ganforge_kernels_{key}.so"
        if so.exists() and so.read_bytes() != b"ELF good":
            raise ImportError(f"{so}: invalid ELF header")
        so.write_bytes(b"ELF good")
        return REF()

    monkeypatch.setattr(extension, "_load", fake_load)
    first = extension.build()
    assert loads == [[]]
    (first.directory / f"ganforge_kernels_{first.key}.so").write_bytes(b"ELF go")  # truncated
    (first.directory / extension.VERDICT).write_text("{}")
    again = extension.build()
    assert again.key == first.key and len(loads) == 3
    assert loads[2] == []  # the directory was emptied, the verdict with it
    assert (again.directory / f"ganforge_kernels_{again.key}.so").read_bytes() == b"ELF good"


def test_a_compile_error_is_not_retried(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extension, "toolchain_problem", lambda **kw: None)
    monkeypatch.setattr(extension, "device_archs", lambda: "9.0")
    calls = []

    def failing(*args: object) -> object:
        calls.append(1)
        raise RuntimeError("Error building extension\nnorm.cu(12): error: identifier \"foo\" is undefined")

    monkeypatch.setattr(extension, "_load", failing)
    with pytest.raises(extension.KernelsUnavailable, match=r'compile error: .*identifier "foo" is undefined'):
        extension.build()
    assert calls == [1]


# -- what a disabled op means for the dispatch and the status -----------------------------------------------------


@pytest.fixture
def disabled_bias_act(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The state after loading an extension whose bias_act failed verification, and CUDA-looking inputs."""
    verdicts = run(NoSecondOrderTerm())
    verdict = {"device": "NVIDIA H200 (sm_90)", "date": "2026-12-01T12:00:00+00:00", "seconds": 1.0,
               "ops": cb._record(verdicts)}
    state = {"module": REF(), "error": None, "verdict": verdict, "warned": set()}
    monkeypatch.setattr(cb, "_STATE", state)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: self.device.type == "meta"))
    return state


def test_cuda_mode_with_a_disabled_op_is_a_clear_error(disabled_bias_act, kernels) -> None:  # type: ignore[no-untyped-def]
    kernels("cuda")
    x = torch.empty(2, 3, device="meta")  # a stand-in for a CUDA tensor: only is_cuda and dtype are read
    with pytest.raises(ConfigError, match=r"GANFORGE_KERNELS=cuda: no CUDA implementation of 'bias_act' is "
                                          r"available \(its CUDA kernel failed self-verification on NVIDIA H200 "
                                          r"\(sm_90\): case 'tanh 2x7x13x11' \[strided\] in float64, double backward"):
        ops.backend_for("bias_act", x)
    assert ops.backend_for("adain", x).name == "cuda"  # the others stay on their kernels


def test_auto_runs_the_reference_for_a_disabled_op_with_one_warning(disabled_bias_act, kernels) -> None:  # type: ignore[no-untyped-def]
    kernels("auto")
    x = torch.empty(2, 3, device="meta")
    with pytest.warns(cb.KernelFallbackWarning, match=r"bias_act uses the PyTorch reference .*case 'tanh"):
        assert ops.backend_for("bias_act", x).name == "ref"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ops.backend_for("bias_act", x).name == "ref"  # warned once
        assert ops.backend_for("pixel_norm", x).name == "cuda"


def test_status_shows_verified_ops_with_device_and_date_and_disabled_ones_with_why(disabled_bias_act, capsys,
                                                                                   monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ganforge.cli import main

    monkeypatch.setenv(ops.ENV, "auto")
    rows = {op: (state, backend, detail) for op, state, backend, detail in cb.status()}
    assert rows["bias_act"][:2] == ("disabled", "ref") and "case 'tanh 2x7x13x11'" in rows["bias_act"][2]
    for op in set(ops.OPS) - {"bias_act"}:
        assert rows[op] == ("verified", "cuda", "on NVIDIA H200 (sm_90), 2026-12-01T12:00:00+00:00")
    assert main(["kernels", "status"]) == 0
    out = capsys.readouterr().out
    assert "bias_act          disabled  ref" in out and "double backward" in out


def test_status_reads_a_cached_verdict_without_building(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cb, "_STATE", {"module": None, "error": None, "verdict": None, "warned": set()})
    monkeypatch.setattr(extension, "toolchain_problem", lambda **kw: None)
    monkeypatch.setattr(extension, "device_archs", lambda: "9.0")
    monkeypatch.setattr(extension, "device_label", lambda index=None: "Test GPU (sm_90)")
    monkeypatch.setattr(extension, "build", lambda **kw: pytest.fail("status must not build"))
    monkeypatch.setenv(ops.ENV, "auto")
    key = extension.build_key("9.0")
    assert {s for _, s, _, _ in cb.status()} == {"not built"}
    (cache / key).mkdir(parents=True)
    (cache / key / "ganforge_kernels.so").write_bytes(b"ELF")
    assert {(s, b) for _, s, b, _ in cb.status()} == {("not verified", "cuda if verified")}
    b = extension.Built(WrongInBfloat16(), key, cache / key)
    cb.verified(b, device=torch.device("cpu"), label="Test GPU (sm_90)")
    states = {op: s for op, s, _, _ in cb.status()}
    assert states.pop("minibatch_stddev") == "disabled" and set(states.values()) == {"verified"}


def test_kernels_verify_on_the_cpu_reports_each_op_and_fails_on_a_wrong_primitive(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ganforge.cli import main

    assert main(["kernels", "verify", "--reference-primitives"]) == 0
    out = capsys.readouterr().out
    assert all(f"{op}" in out for op in ops.OPS) and out.count("verified") == len(ops.OPS)
    monkeypatch.setattr(cb, "RefPrimitives", OffByOnePadding)
    assert main(["kernels", "verify", "--reference-primitives"]) == 1
    out = capsys.readouterr().out
    assert "upfirdn2d" in out and "disabled" in out and "case '1x1 image up 2'" in out


def test_kernels_verify_without_a_gpu_says_how_to_check_on_the_cpu(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ganforge.cli import main

    monkeypatch.setattr(extension, "toolchain_problem", lambda **kw: "no CUDA device (torch.cuda.is_available() "
                                                                     "is False)")
    assert main(["kernels", "verify"]) == 2
    err = capsys.readouterr().err
    assert "kernels verify: no CUDA device" in err and "--reference-primitives" in err and "Traceback" not in err
