"""The CUDA backend of the ops layer.

- On the CPU: the autograd wiring (Functions, backward, double backward, layouts) runs with
  :class:`RefPrimitives`, the kernels' contract in plain PyTorch, and must equal the reference ops and
  pass gradcheck / gradgradcheck in float64.
- Compile check (slow): nvcc compiles every CUDA source for one architecture (skipped without nvcc).
- GPU (``gpu`` marker): the kernels against the float64 reference on many shapes and layouts with
  poisoned outputs, gradcheck / gradgradcheck, and R1 / WGAN-GP penalties through a StyleGAN
  discriminator equal to the reference path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from ganforge import ConfigError
from ganforge_plugins import ops
from ganforge_plugins.ops import cuda_backend as cb
from ganforge_plugins.ops import dispatch, extension, reference


def cpp_signatures() -> dict[str, list[str]]:
    """The parameter types of every function the extension exports, read from csrc/ops.cpp."""
    text = (extension.CSRC / "ops.cpp").read_text()
    decls = re.findall(r"(?:at::Tensor|std::vector<at::Tensor>)\s+(\w+)\((.*?)\);", text, flags=re.S)
    return {name: [" ".join(p.split()[:-1]) for p in params.split(",")] for name, params in decls}


class CheckedPrimitives(cb.RefPrimitives):
    """RefPrimitives that check every call against the C++ signature (what pybind11 would accept), so
    that the CPU wiring tests also catch an argument list that drifted from the extension's."""

    SIGNATURES = cpp_signatures()

    def __getattribute__(self, name: str):  # type: ignore[no-untyped-def]
        fn = super().__getattribute__(name)
        types = CheckedPrimitives.SIGNATURES.get(name)
        if types is None:
            return fn

        def checked(*args):  # type: ignore[no-untyped-def]
            assert len(args) == len(types), f"{name}: {len(args)} arguments for {len(types)} parameters"
            for i, (a, t) in enumerate(zip(args, types, strict=True)):
                ok = {"const at::Tensor&": isinstance(a, torch.Tensor),
                      "const std::optional<at::Tensor>&": a is None or isinstance(a, torch.Tensor),
                      "int64_t": isinstance(a, int) and not isinstance(a, bool),
                      "double": isinstance(a, float | int) and not isinstance(a, bool),
                      "bool": isinstance(a, bool)}[t]
                assert ok, f"{name}: argument {i} is {type(a).__name__}, the C++ parameter is {t}"
            return fn(*args)

        return checked


REF = CheckedPrimitives()


def rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64, grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, generator=rng(seed), dtype=dtype).requires_grad_(grad)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_reference_primitives_cover_every_exported_kernel_with_its_arity() -> None:
    import inspect

    sigs = cpp_signatures()
    assert set(sigs) == {"bias_act", "upfirdn2d", "plane_norm_fwd", "plane_norm_bwd", "pixel_norm", "mbstd_fwd",
                         "mbstd_bwd"}
    for name, types in sigs.items():
        assert len(inspect.signature(getattr(cb.RefPrimitives, name)).parameters) == len(types), name
        assert f'm.def("{name}", &ganforge::{name}' in (extension.CSRC / "ops.cpp").read_text()


# -- bias_act wiring -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("act", list(ops.ACTIVATIONS))
def test_bias_act_function_equals_the_reference_with_first_and_second_gradients(act: str) -> None:
    x = randn(2, 3, 4, seed=1, grad=True)
    b = randn(3, seed=2, grad=True)
    kwargs = {"dim": 1, "act": act, "gain": 1.3, "clamp": 0.9 if act != "sigmoid" else 0.6}

    def fused(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return cb.bias_act(x, b, prim=REF, **kwargs)

    torch.testing.assert_close(fused(x, b), reference.bias_act(x, b, **kwargs))
    assert torch.autograd.gradcheck(fused, (x, b))
    assert torch.autograd.gradgradcheck(fused, (x, b))
    # the double backward equals the reference's (R1's gradient penalty shape of computation)
    for impl in (fused, lambda x, b: reference.bias_act(x, b, **kwargs)):
        (g,) = torch.autograd.grad(impl(x, b).square().sum(), x, create_graph=True)
        gg = torch.autograd.grad(g.square().sum(), [x, b])
        if impl is fused:
            got = gg
        else:
            torch.testing.assert_close(got, gg)


def test_bias_act_along_a_channel_dim_of_a_channels_last_tensor_keeps_the_layout() -> None:
    x = randn(2, 5, 3, 4, seed=3).to(memory_format=torch.channels_last).requires_grad_(True)
    b = randn(5, seed=4, grad=True)
    y = cb.bias_act(x, b, act="lrelu", prim=REF)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, reference.bias_act(x, b, act="lrelu"))
    dy = randn(2, 5, 3, 4, seed=5)  # contiguous gradient for a channels-last input
    got = torch.autograd.grad(y, [x, b], dy)
    want = torch.autograd.grad(reference.bias_act(x, b, act="lrelu"), [x, b], dy)
    torch.testing.assert_close(got, want)
    # any dim, non-contiguous input
    xt = randn(4, 6, seed=6).t()
    torch.testing.assert_close(cb.bias_act(xt, torch.arange(4.0, dtype=torch.float64), dim=1, act="swish", prim=REF),
                               reference.bias_act(xt, torch.arange(4.0, dtype=torch.float64), dim=1, act="swish"))


def test_bias_act_third_order_is_refused_with_a_message() -> None:
    x = randn(3, 4, seed=7, grad=True)
    (g,) = torch.autograd.grad(cb.bias_act(x, act="tanh", prim=REF).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="third-order gradients are not supported"):
        torch.autograd.grad(gg.sum(), x)


# -- upfirdn2d wiring -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("up", "down", "pad", "separable"), [
    (1, 1, (1, 1, 1, 1), False), (2, 1, (2, 1, 2, 1), False), (1, 2, (1, 0, 1, 0), True),
    ((2, 1), (1, 2), (0, 2, 1, 3), False), (3, 1, (-1, 1, 0, 2), True), (1, 1, (-1, 0, -2, -1), False),
])
def test_upfirdn2d_function_equals_the_reference_with_gradients_of_two_orders(up, down, pad, separable) -> None:
    x = randn(2, 2, 6, 5, seed=8, grad=True)
    f = torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64) if separable else \
        torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)
    kw = {"up": up, "down": down, "padding": pad, "gain": 1.7}

    def fused(x: torch.Tensor) -> torch.Tensor:
        return cb.upfirdn2d(x, f, prim=REF, **kw)

    torch.testing.assert_close(fused(x), reference.upfirdn2d(x, f, **kw))
    assert torch.autograd.gradcheck(fused, (x,))
    assert torch.autograd.gradgradcheck(lambda t: fused(t.square()), (x,))  # the adjoint of the adjoint


def test_upfirdn2d_of_channels_last_input_gives_channels_last_output_and_any_order_runs_the_op() -> None:
    x = randn(2, 3, 8, 8, seed=9).to(memory_format=torch.channels_last).requires_grad_(True)
    f = ops.setup_filter([1, 3, 3, 1]).double()
    calls = []

    class Counting(cb.RefPrimitives):
        @staticmethod
        def upfirdn2d(*args):  # type: ignore[no-untyped-def]
            calls.append(args[2:9])
            return cb.RefPrimitives.upfirdn2d(*args)

    y = cb.upfirdn2d(x, f, down=2, padding=1, prim=Counting())
    torch.testing.assert_close(y, reference.upfirdn2d(x, f, down=2, padding=1))
    (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    torch.autograd.grad(g.square().sum(), x)
    # forward, its adjoint (up and down swapped), and the adjoint of that in the double backward
    assert [c[:4] for c in calls[:2]] == [(1, 1, 2, 2), (2, 2, 1, 1)]
    assert len(calls) >= 3 and all(c[:4] in ((1, 1, 2, 2), (2, 2, 1, 1)) for c in calls)


def test_upfirdn2d_with_a_trainable_filter_uses_the_reference() -> None:
    x = randn(1, 1, 5, 5, seed=10)
    f = randn(3, 3, seed=11, grad=True)
    y = cb.upfirdn2d(x, f, padding=1, prim=object())  # the primitives are never touched
    (df,) = torch.autograd.grad(y.sum(), f)
    assert df.shape == (3, 3)


# -- adain / style_epilogue wiring ------------------------------------------------------------------------------


def test_adain_function_equals_the_reference_with_gradients_of_two_orders() -> None:
    x = (randn(2, 3, 4, 5, seed=12) * 3 + 1).requires_grad_(True)
    s, b = randn(2, 3, seed=13, grad=True), randn(2, 3, seed=14, grad=True)

    def fused(x, s, b):  # type: ignore[no-untyped-def]
        return cb.adain(x, s, b, prim=REF)

    torch.testing.assert_close(fused(x, s, b), reference.adain(x, s, b))
    assert torch.autograd.gradcheck(fused, (x, s, b))
    assert torch.autograd.gradgradcheck(fused, (x, s, b))
    # 3 spatial dims and a channels-last input
    x5 = randn(2, 3, 2, 3, 4, seed=15)
    torch.testing.assert_close(cb.adain(x5, s.detach(), b.detach(), prim=REF), reference.adain(x5, s, b))
    xcl = x.detach().to(memory_format=torch.channels_last)
    y = cb.adain(xcl, s.detach(), b.detach(), prim=REF)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, reference.adain(x, s, b))


@pytest.mark.parametrize("noise_batch", [None, 1, 2])
def test_style_epilogue_function_equals_the_reference_with_gradients_of_two_orders(noise_batch) -> None:
    x = randn(2, 3, 4, 4, seed=16, grad=True)
    noise = None if noise_batch is None else randn(noise_batch, 1, 4, 4, seed=17, grad=True)
    strength, bias = randn(3, seed=18, grad=True), randn(3, seed=19, grad=True)
    scale, shift = randn(2, 3, seed=20, grad=True), randn(2, 3, seed=21, grad=True)

    def fused(x, strength, bias, scale, shift, *noise_arg):  # type: ignore[no-untyped-def]
        n = noise_arg[0] if noise_arg else None
        return cb.style_epilogue(x, n, strength, bias, scale, shift, alpha=0.3, gain=1.5, prim=REF)

    args = (x, strength, bias, scale, shift, *(() if noise is None else (noise,)))
    torch.testing.assert_close(fused(*args), reference.style_epilogue(x, noise, strength, bias, scale, shift,
                                                                      alpha=0.3, gain=1.5))
    assert torch.autograd.gradcheck(fused, args)
    assert torch.autograd.gradgradcheck(fused, args)


# -- pixel_norm / minibatch_stddev wiring --------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 0, -1])
def test_pixel_norm_function_equals_the_reference_with_gradients_of_two_orders(dim: int) -> None:
    x = randn(3, 4, 2, 3, seed=22, grad=True)

    def fused(x):  # type: ignore[no-untyped-def]
        return cb.pixel_norm(x, dim=dim, prim=REF)

    torch.testing.assert_close(fused(x), reference.pixel_norm(x, dim=dim))
    assert torch.autograd.gradcheck(fused, (x,))
    assert torch.autograd.gradgradcheck(fused, (x,))
    z = randn(5, 7, seed=23)  # the mapping network's [N, w_dim] input
    torch.testing.assert_close(cb.pixel_norm(z, prim=REF), reference.pixel_norm(z))
    xcl = x.detach().to(memory_format=torch.channels_last)
    y = cb.pixel_norm(xcl, prim=REF)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, reference.pixel_norm(x))


@pytest.mark.parametrize(("n", "group", "parts"), [(8, 4, 1), (6, 4, 2), (4, 4, 1), (3, 4, 1)])
def test_minibatch_stddev_function_equals_the_reference_with_gradients_of_two_orders(n, group, parts) -> None:
    x = randn(n, 4, 3, 3, seed=24, grad=True)

    def fused(x):  # type: ignore[no-untyped-def]
        return cb.minibatch_stddev(x, group_size=group, num_channels=parts, prim=REF)

    torch.testing.assert_close(fused(x), reference.minibatch_stddev(x, group_size=group, num_channels=parts))
    assert torch.autograd.gradcheck(fused, (x,))
    assert torch.autograd.gradgradcheck(fused, (x,))
    with pytest.raises(ValueError, match="do not split into num_channels=3"):
        cb.minibatch_stddev(x, num_channels=3, prim=REF)


@pytest.mark.parametrize("family", ["stylegan", "pggan"])
def test_models_through_the_backend_functions_equal_the_reference_path(family: str, monkeypatch, kernels) -> None:
    """G's forward and backward, and D's R1 penalty with its parameter gradients, run through the
    backend's Functions (reference primitives) exactly as on the GPU, against GANFORGE_KERNELS=ref."""
    from ganforge import DataSpec
    from ganforge_plugins.models import pggan, stylegan

    mod = stylegan if family == "stylegan" else pggan
    prefix = "StyleGAN" if family == "stylegan" else "PGGAN"
    used: list[int] = []
    monkeypatch.setattr(cb, "_primitives", lambda: used.append(1) or REF)
    monkeypatch.setattr(dispatch, "_BACKENDS", dict(dispatch._BACKENDS))
    ops.register_backend("cuda", dict(cb.OPS), why_not=lambda op, x: None)
    data = DataSpec(shape=(3, 16, 16))
    torch.manual_seed(0)
    G = getattr(mod, f"{prefix}Generator")(getattr(mod, f"{prefix}GeneratorConfig")(channel_base=128, channel_max=8),
                                           data).double()
    D = getattr(mod, f"{prefix}Discriminator")(
        getattr(mod, f"{prefix}DiscriminatorConfig")(channel_base=128, channel_max=8), data).double()
    z = randn(4, G.config.latent_dim, seed=30)
    real = randn(4, 3, 16, 16, seed=31)
    results = {}
    for mode in ("ref", "cuda"):
        kernels(mode)
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same noise in both runs
        fake = G(z)
        fake.square().mean().backward()
        x = real.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        g.square().sum().backward()
        grads = {k: p.grad.clone() for m in (G, D) for k, p in m.named_parameters() if p.grad is not None}
        results[mode] = (fake.detach(), grads)
    assert len(used) > 10  # the cuda run went through the backend's Functions
    torch.testing.assert_close(results["cuda"][0], results["ref"][0])
    assert results["cuda"][1].keys() == results["ref"][1].keys()
    for k, want in results["ref"][1].items():
        torch.testing.assert_close(results["cuda"][1][k], want, rtol=1e-9, atol=1e-11, msg=k)


# -- dispatch and build plumbing -----------------------------------------------------------------------------------


def test_the_cuda_backend_is_registered_and_cpu_inputs_stay_on_the_reference(kernels) -> None:
    assert set(dispatch._BACKENDS["cuda"].ops) == set(ops.OPS)
    x = torch.zeros(1, 2, 3, 3)
    kernels("auto")
    assert all(ops.backend_for(op, x).name == "ref" for op in ops.OPS)
    kernels("cuda")
    with pytest.raises(ConfigError, match=r"no CUDA implementation of 'adain' is available \(the input is on cpu"):
        ops.backend_for("adain", x)


def test_auto_falls_back_with_one_warning_naming_the_reason(monkeypatch, kernels) -> None:
    monkeypatch.setattr(cb, "_STATE", {"module": None, "error": "no nvcc (CUDA_HOME=None)", "verdict": None,
                                       "warned": set()})
    x = torch.empty(2, 3, device="meta")  # a stand-in for a CUDA tensor: only is_cuda and dtype are read
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    with pytest.warns(cb.KernelFallbackWarning, match="no nvcc"):
        assert not cb.supports("bias_act", x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not cb.supports("adain", x)  # once only
    kernels("cuda")
    with pytest.raises(ConfigError, match=r"'pixel_norm' is available \(no nvcc"):
        ops.backend_for("pixel_norm", x)


def test_build_key_changes_with_the_sources_and_the_architecture(monkeypatch, tmp_path) -> None:
    key = extension.build_key("9.0")
    assert key == extension.build_key("9.0") and key != extension.build_key("8.0")
    for name in (*extension.SOURCES, *extension.HEADERS):
        (tmp_path / name).write_bytes((extension.CSRC / name).read_bytes())
    (tmp_path / "norm.cu").write_bytes(b"// changed\n" + (extension.CSRC / "norm.cu").read_bytes())
    monkeypatch.setattr(extension, "CSRC", tmp_path)
    assert extension.build_key("9.0") != key


def test_status_lists_every_op_with_a_backend_and_a_reason(monkeypatch) -> None:
    monkeypatch.setenv(ops.ENV, "ref")  # status reads the environment afresh
    monkeypatch.setattr(cb, "_STATE", {"module": None, "error": None, "verdict": None, "warned": set()})
    monkeypatch.setattr(extension, "toolchain_problem",
                        lambda **kw: "no CUDA device (torch.cuda.is_available() is False)")
    assert [(op, b) for op, _, b, _ in cb.status()] == [(op, "ref") for op in ops.OPS]
    monkeypatch.setenv(ops.ENV, "auto")
    rows = cb.status()
    assert {(state, b) for _, state, b, _ in rows} == {("not built", "ref")}
    assert all("no CUDA device" in why for *_, why in rows)
    monkeypatch.setenv(ops.ENV, "cuda")
    assert {b for _, _, b, _ in cb.status()} == {"error"}


def test_kernels_status_command_prints_every_op(capsys, monkeypatch) -> None:
    from ganforge.cli import main

    monkeypatch.setenv(ops.ENV, "ref")
    assert main(["kernels", "status"]) == 0
    out = capsys.readouterr().out
    for op in ops.OPS:
        assert op in out
    assert "GANFORGE_KERNELS=ref" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without CUDA prints")
def test_kernels_status_on_a_machine_without_cuda_prints_no_torch_warning() -> None:
    # importing torch.utils.cpp_extension warns "No CUDA runtime is found" (a logger, not warnings):
    # status must say why the kernels are off in its own words, not after torch's alarm
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_HOME", "CUDA_PATH") and not k.startswith("GANFORGE")}
    proc = subprocess.run([sys.executable, "-m", "ganforge", "kernels", "status"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA device" in proc.stdout
    assert "No CUDA runtime" not in proc.stdout + proc.stderr


# -- compile check --------------------------------------------------------------------------------------------------


def _nvcc_command(source: Path, out: Path) -> list[str]:
    from torch.utils import cpp_extension

    nvcc = extension.nvcc_path()
    includes = list(cpp_extension.include_paths())
    home = extension.cuda_home()
    if home:
        includes.append(str(Path(home) / "include"))
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return [str(nvcc), "-c", str(source), "-o", str(out), *[f"-I{p}" for p in includes], "-std=c++20", "-O3",
            "--expt-relaxed-constexpr", "-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
            "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__", f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
            "-gencode=arch=compute_90,code=sm_90", "-Werror", "cross-execution-space-call"]


def _binding_command(source: Path, out: Path) -> list[str]:
    import sysconfig

    from torch.utils import cpp_extension

    includes = [*cpp_extension.include_paths(), sysconfig.get_paths()["include"]]
    home = extension.cuda_home()
    if home:
        includes.append(str(Path(home) / "include"))
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return ["c++", "-fsyntax-only", str(source), *[f"-I{p}" for p in includes], "-std=c++20",
            "-DTORCH_EXTENSION_NAME=ganforge_kernels_check", "-DTORCH_API_INCLUDE_EXTENSION_H",
            f"-D_GLIBCXX_USE_CXX11_ABI={abi}"]


@pytest.mark.slow
def test_cuda_sources_compile_with_nvcc(tmp_path: Path) -> None:
    """nvcc compiles each kernel file, device code included (sm_90), with PyTorch's headers and flags;
    the C++ compiler checks the Python bindings. Two files at a time (each compiler is single-threaded,
    and the machine has two cores): about 4 minutes for the four on 2 cores."""
    from concurrent.futures import ThreadPoolExecutor

    if torch.version.cuda is None:
        pytest.skip("PyTorch without CUDA: no CUDA headers to compile against")
    if extension.nvcc_path() is None:
        pytest.skip(f"no nvcc (CUDA_HOME={extension.cuda_home()!r}): the CUDA sources are not compile-checked here")

    def compile_one(source: str) -> str:
        out = tmp_path / f"{source}.o"
        if source.endswith(".cpp"):
            command = _binding_command(extension.CSRC / source, out)
        else:
            command = _nvcc_command(extension.CSRC / source, out)
        result = subprocess.run(command, capture_output=True, text=True, timeout=900,
                                env={**os.environ, "CUDA_HOME": extension.cuda_home() or ""})
        if result.returncode != 0:
            return f"{source}: exit {result.returncode}\n{result.stderr[-4000:]}"
        if not source.endswith(".cpp") and out.stat().st_size == 0:
            return f"{source}: nvcc wrote an empty object"
        return ""

    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f for f in pool.map(compile_one, extension.SOURCES) if f]
    assert failures == [], "\n\n".join(failures)


# -- GPU: the kernels themselves -------------------------------------------------------------------------------------

SHAPES = [(1, 1, 1, 1), (2, 3, 1, 1), (3, 5, 4, 4), (2, 7, 13, 11), (4, 32, 64, 64), (2, 512, 16, 16), (1, 3, 256, 256)]
LAYOUTS = ["contiguous", "channels_last", "strided"]
TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (2e-5, 2e-5), torch.bfloat16: (2e-2, 2e-2),
       torch.float16: (2e-3, 2e-3)}


def poison() -> None:
    """Fill the CUDA caching allocator's free blocks with NaN, so an output element a kernel forgets to
    write cannot pass by holding a previous run's right answer."""
    free, _ = torch.cuda.mem_get_info()
    for numel in (1 << 10, 1 << 16, 1 << 20, 1 << 24):
        if numel * 4 < free // 8:
            torch.full((numel,), float("nan"), device="cuda")  # freed at once, its block stays cached
    torch.cuda.synchronize()


def layout(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if kind == "strided":  # a non-dense view: every other column of a wider tensor
        wide = torch.stack([x, torch.full_like(x, float("nan"))], dim=-1)
        return wide[..., 0]
    return x.contiguous()


def gpu_case(op: str, shape: tuple[int, int, int, int], seed: int) -> tuple[list[torch.Tensor], dict]:
    """float64 CUDA inputs (x first) and keyword arguments for ``op``."""
    n, c, h, w = shape
    g = torch.Generator(device="cuda").manual_seed(seed)

    def r(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, device="cuda", dtype=torch.float64)

    x = r(*shape) * 2 + 0.5
    if op == "bias_act":
        return [x, r(c)], {"act": ["lrelu", "tanh", "swish", "softplus", "elu"][seed % 5], "clamp": 1.5}
    if op == "adain":
        return [x, r(n, c), r(n, c)], {}
    if op == "style_epilogue":
        return [x, r(n if seed % 2 else 1, 1, h, w), r(c), r(c), r(n, c), r(n, c)], {}
    if op == "upfirdn2d":
        f = ops.setup_filter([1, 3, 3, 1] if seed % 2 else [1, 2, 1], device=torch.device("cuda")).double()
        up, down = [(1, 2), (2, 1), (1, 1), (2, 2)][seed % 4]
        return [x, f], {"up": up, "down": down, "padding": (2, 1, 1, 2)}
    return [x], {"group_size": 4} if op == "minibatch_stddev" else {}


@pytest.mark.gpu
@pytest.mark.parametrize("op", list(ops.OPS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16],
                         ids=["f64", "f32", "bf16", "f16"])
def test_kernels_match_the_float64_reference_on_many_shapes_and_layouts(op: str, dtype: torch.dtype) -> None:
    rtol, atol = TOL[dtype]
    for i, shape in enumerate(SHAPES):
        if op == "upfirdn2d" and min(shape[2:]) < 2:
            continue
        for kind in LAYOUTS:
            args, kw = gpu_case(op, shape, seed=i)
            args = [a.to(dtype) if j == 0 or op != "upfirdn2d" else a for j, a in enumerate(args)]
            x = layout(args[0], kind)
            want = getattr(reference, op)(x.double(), *[a.double() for a in args[1:]], **kw)
            poison()
            got = cb.OPS[op](x, *args[1:], **kw)
            assert got.dtype == dtype and torch.isfinite(got).all(), (op, shape, kind)
            scale = want.abs().max().clamp(min=1).item()
            torch.testing.assert_close(got.double(), want, rtol=rtol, atol=atol * scale, msg=f"{op} {shape} {kind}")
            # gradients of x (and the parameters) against the float64 reference's
            if dtype in (torch.float64, torch.float32) and x.numel() <= 1 << 20:
                params = [a.detach().requires_grad_(op != "upfirdn2d") for a in args[1:]]
                xs = [x.detach().requires_grad_(True), *params]
                dy = torch.randn_like(want)
                poison()
                got_g = torch.autograd.grad(cb.OPS[op](*xs, **kw), [t for t in xs if t.requires_grad], dy.to(dtype))
                xr = [t.detach().double().requires_grad_(t.requires_grad) for t in xs]
                want_g = torch.autograd.grad(getattr(reference, op)(*xr, **kw), [t for t in xr if t.requires_grad], dy)
                for a, b in zip(got_g, want_g, strict=True):
                    s = b.abs().max().clamp(min=1).item()
                    torch.testing.assert_close(a.double(), b, rtol=rtol * 10, atol=atol * 10 * s,
                                               msg=f"grad {op} {shape} {kind}")


@pytest.mark.gpu
@pytest.mark.parametrize("op", list(ops.OPS))
def test_kernels_pass_gradcheck_and_gradgradcheck_in_float64(op: str) -> None:
    for seed in range(3):
        args, kw = gpu_case(op, (4, 3, 6, 5), seed)
        grads = [a.requires_grad_(op != "upfirdn2d" or j == 0) for j, a in enumerate(args)]

        def fn(*a, kw=kw):  # type: ignore[no-untyped-def]
            y = cb.OPS[op](*a, **kw)
            return y.square() if op == "upfirdn2d" else y  # a linear op's second derivative is zero

        assert torch.autograd.gradcheck(fn, tuple(grads))
        assert torch.autograd.gradgradcheck(fn, tuple(grads))


@pytest.mark.gpu
@pytest.mark.parametrize("family", ["stylegan", "pggan"])
def test_r1_and_wgan_gp_through_a_discriminator_equal_the_reference_path(family: str, kernels) -> None:
    from ganforge import DataSpec
    from ganforge_plugins.models import pggan, stylegan

    cls, cfg = ((stylegan.StyleGANDiscriminator, stylegan.StyleGANDiscriminatorConfig) if family == "stylegan"
                else (pggan.PGGANDiscriminator, pggan.PGGANDiscriminatorConfig))
    torch.manual_seed(0)
    D = cls(cfg(channel_base=256, channel_max=32), DataSpec(shape=(3, 32, 32))).cuda().double()
    real = torch.randn(8, 3, 32, 32, device="cuda", dtype=torch.float64)
    fake = torch.randn(8, 3, 32, 32, device="cuda", dtype=torch.float64)
    eps = torch.rand(8, 1, 1, 1, device="cuda", dtype=torch.float64)
    results = {}
    for mode in ("ref", "cuda"):
        kernels(mode)
        out = {}
        for name, x0 in (("r1", real), ("wgan-gp", eps * real + (1 - eps) * fake)):
            D.zero_grad(set_to_none=True)
            x = x0.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
            penalty = g.square().sum(dim=(1, 2, 3)).mean() if name == "r1" else \
                (g.flatten(1).norm(dim=1) - 1).square().mean()
            penalty.backward()
            out[name] = (penalty.detach(), {k: p.grad.clone() for k, p in D.named_parameters() if p.grad is not None})
        results[mode] = out
    for name in ("r1", "wgan-gp"):
        torch.testing.assert_close(results["cuda"][name][0], results["ref"][name][0], rtol=1e-9, atol=1e-12)
        grads, want = results["cuda"][name][1], results["ref"][name][1]
        assert grads.keys() == want.keys() and len(want) > 4
        for k in want:
            torch.testing.assert_close(grads[k], want[k], rtol=1e-8, atol=1e-10, msg=k)


@pytest.mark.gpu
def test_auto_uses_the_kernels_for_cuda_tensors_without_a_warning(kernels) -> None:
    kernels("auto")
    x = torch.randn(2, 3, 4, 4, device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all(ops.backend_for(op, x).name == "cuda" for op in ops.OPS)
    assert ops.backend_for("adain", x.cpu()).name == "ref"
