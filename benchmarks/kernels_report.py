"""Benchmark of the fused ops (kernels issue): eager reference vs torch.compile vs our CUDA kernels vs NVlabs.

Per op x shape x dtype, three passes where they apply:

- ``fwd``: the op;
- ``fwd+bwd``: the op and the gradient of ``<y, w>`` with respect to its input;
- ``double``: the R1 pattern, ``g = grad(<y^2, w> / 2, x, create_graph=True)`` then ``g.square().sum()``
  backwards, only for the ops a discriminator uses (bias_act, upfirdn2d, minibatch_stddev); the
  square keeps the second derivative non-zero for the linear upfirdn2d.

Implementations: ``eager`` (:mod:`ganforge_plugins.ops.reference`), ``compile`` (``torch.compile`` of
the same function; ``torch._dynamo.reset()`` before every case; the first call's time is reported
apart as ``compile_s``; double backward is attempted and its error recorded), ``ours`` (the CUDA
backend, :mod:`ganforge_plugins.ops.cuda_backend`), ``nvlabs`` (``torch_utils.ops.bias_act`` /
``upfirdn2d`` from a local StyleGAN2-ADA / StyleGAN3 checkout given with ``--nvlabs PATH``; never
vendored). On a machine without CUDA, ``ours`` runs the same Functions over the plain-PyTorch
primitives (``ours-ref-prims``: a wiring check, not a speed claim).

Each row: median ms over ``--reps`` timed runs after warm-up (CUDA events on the GPU), the spread
(interquartile range), GB/s of the memory floor, and the multiple of the floor: the floor is the bytes
the op must move (below) at the copy bandwidth measured on the same device (``x.copy_(y)`` of 1 GiB).
Floors: elementwise and normalising ops read the input and write the output once forward (2 passes)
and read x, dy and write dx backward (5 passes in all); upfirdn2d moves its input and output once
forward and twice in all for forward+backward; double backward counts twice the forward+backward bytes.

    python benchmarks/kernels_report.py            # the issue's shapes, fp32 / bf16 / fp16, on CUDA
    python benchmarks/kernels_report.py --nvlabs ~/src/stylegan3 --models
    python benchmarks/kernels_report.py --quick    # tiny shapes on the CPU (what CI runs)

Writes ``benchmarks/results/kernels-<device>.json`` (device, torch, CUDA, date, rows) and ``.md``
(``--out DIR`` elsewhere). The issue's acceptance numbers come from a run on the lent GPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = [(32, 512, 16, 16), (32, 256, 64, 64), (64, 512, 64, 64), (16, 64, 256, 256), (4, 32, 1024, 1024)]
QUICK_SHAPES = [(4, 8, 8, 8), (2, 4, 16, 16)]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
OPS = ("bias_act", "adain", "style_epilogue", "pixel_norm", "minibatch_stddev", "upfirdn2d")
DISCRIMINATOR_OPS = ("bias_act", "upfirdn2d", "minibatch_stddev")  # double backward matters (R1, WGAN-GP)


# -- the cases ----------------------------------------------------------------------------------------------


def make_inputs(op: str, shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int = 0) -> dict[str, Any]:
    """Input ``x`` and the op's parameters, as the StyleGAN / PGGAN layers call it."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    n, c, h, w = shape

    def rnd(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g).to(device=device, dtype=dtype)

    x = rnd(*shape)
    if op == "bias_act":
        return {"x": x, "args": (rnd(c),), "kwargs": {"act": "lrelu"}}
    if op == "adain":
        return {"x": x, "args": (rnd(n, c), rnd(n, c)), "kwargs": {}}
    if op == "style_epilogue":
        return {"x": x, "args": (rnd(n, 1, h, w), rnd(c), rnd(c), rnd(n, c), rnd(n, c)), "kwargs": {}}
    if op == "upfirdn2d":  # StyleGAN's 2x "bilinear" down-sampling: [1, 2, 1] filter
        from ganforge_plugins.ops import setup_filter

        f = setup_filter([1, 2, 1], device=torch.device(device))
        return {"x": x, "args": (f,), "kwargs": {"down": 2, "padding": (1, 0, 1, 0)}}
    return {"x": x, "args": (), "kwargs": {}}


def floor_bytes(op: str, shape: tuple[int, ...], dtype: torch.dtype, mode: str) -> int:
    """Bytes the op must move at least (see the module docstring)."""
    n, c, h, w = shape
    size = n * c * h * w * torch.finfo(dtype).bits // 8
    if op == "upfirdn2d":
        out = size // 4
        one = size + out
        return {"fwd": one, "fwd+bwd": 2 * one, "double": 4 * one}[mode]
    if op == "minibatch_stddev":
        out = n * (c + 1) * h * w * torch.finfo(dtype).bits // 8
        fwd = size + out
        return {"fwd": fwd, "fwd+bwd": fwd + out + 2 * size, "double": 2 * (fwd + out + 2 * size)}[mode]
    return {"fwd": 2 * size, "fwd+bwd": 5 * size, "double": 10 * size}[mode]


def implementations(device: str, nvlabs: str | None, with_compile: bool,
                    compile_backend: str = "inductor") -> dict[str, Callable[[str], Any]]:
    """name -> (op -> callable with the reference's signature, or None where it has no such op)."""
    from ganforge_plugins.ops import cuda_backend, reference

    impls: dict[str, Callable[[str], Any]] = {"eager": lambda op: getattr(reference, op)}
    if with_compile:
        impls["compile"] = lambda op: torch.compile(getattr(reference, op), dynamic=False, backend=compile_backend)
    if device == "cuda":
        impls["ours"] = lambda op: cuda_backend.OPS[op]
    else:
        prims = cuda_backend.RefPrimitives()
        impls["ours-ref-prims"] = lambda op: (lambda *a, **k: cuda_backend.OPS[op](*a, prim=prims, **k))
    if nvlabs:
        impls["nvlabs"] = nvlabs_ops(nvlabs)
    return impls


def nvlabs_ops(path: str) -> Callable[[str], Any]:
    """NVlabs' ``bias_act`` and ``upfirdn2d`` (CUDA implementations) from a local stylegan3 checkout.

    The checkout is imported and each plugin built when its op is first asked for, outside the timed
    region; a checkout that does not import or a plugin that does not build raises there, which
    :func:`bench_ops` reports as that implementation's row (never the whole stage)."""
    modules: dict[str, Any] = {}

    def load() -> dict[str, Any]:
        if not modules:
            root = str(Path(path).expanduser().resolve())
            if root not in sys.path:
                sys.path.insert(0, root)
            from torch_utils.ops import bias_act as nv_bias_act  # type: ignore[import-not-found]
            from torch_utils.ops import upfirdn2d as nv_upfirdn2d  # type: ignore[import-not-found]

            modules.update(bias_act=nv_bias_act, upfirdn2d=nv_upfirdn2d)
        return modules

    def pick(op: str) -> Any:
        if op not in ("bias_act", "upfirdn2d"):
            return None
        module = load()[op]
        module._init()  # builds the plugin (stylegan3 raises if it cannot; it never falls back silently)
        if op == "bias_act":
            return lambda x, b, act="linear", **k: module.bias_act(x, b, act=act, impl="cuda", **k)
        return lambda x, f, down=1, padding=0, **k: module.upfirdn2d(x, f, down=down, padding=list(padding),
                                                                     impl="cuda", **k)

    return pick


def run_pass(fn: Any, case: dict[str, Any], mode: str, w: torch.Tensor) -> Callable[[], Any]:
    x0 = case["x"]
    if mode == "fwd":
        return lambda: fn(x0, *case["args"], **case["kwargs"])
    x = x0.detach().requires_grad_(True)
    if mode == "fwd+bwd":
        def step() -> Any:
            y = fn(x, *case["args"], **case["kwargs"])
            return torch.autograd.grad(y, x, w)
        return step

    def double() -> Any:
        y = fn(x, *case["args"], **case["kwargs"])
        (g,) = torch.autograd.grad(y, x, w * y, create_graph=True)  # of <y^2, w> / 2: nonlinear even for FIR
        return torch.autograd.grad(g.float().square().sum(), x)
    return double


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_ms(step: Callable[[], Any], device: str, warmup: int, reps: int) -> tuple[float, float]:
    """Median and interquartile range in ms (CUDA events on the GPU, so the timed region is the device's)."""
    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(reps):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return statistics.median(times), q[2] - q[0]


def copy_bandwidth(device: str, quick: bool) -> float:
    """GB/s of ``dst.copy_(src)`` (read + write), the memory floor's bandwidth."""
    numel = (1 << 20) if quick else (1 << 28)  # 4 MiB / 1 GiB of fp32
    src = torch.empty(numel, device=device)
    dst = torch.empty_like(src)
    ms, _ = time_ms(lambda: dst.copy_(src), device, 3, 10 if quick else 30)
    return 2 * numel * 4 / (ms * 1e-3) / 1e9


def reps_that_fit(once_s: float, left_s: float, warmup: int, reps: int) -> int:
    """How many of ``reps`` timed calls fit in ``left_s`` after ``warmup`` more, one call taking ``once_s``;
    0 when not even one does."""
    fits = int(left_s / max(once_s, 1e-9)) - warmup
    return max(0, min(reps, fits))


def bench_ops(args: argparse.Namespace, device: str, bandwidth: float, *, deadline: float | None = None,
              compile_backend: str = "inductor") -> list[dict[str, Any]]:
    """Rows of :func:`run_pass` timings. ``args.impls`` / ``args.shapes`` (optional) narrow the
    implementations and shapes; past ``deadline`` (``time.perf_counter()``) rows are marked skipped."""
    from ganforge_plugins.ops import cuda_backend, reference

    rows = []
    impls = implementations(device, args.nvlabs, args.compile, compile_backend)
    if getattr(args, "impls", None):
        impls = {k: v for k, v in impls.items() if k in args.impls}
    shapes = getattr(args, "shapes", None) or (QUICK_SHAPES if args.quick else SHAPES)
    for op in args.ops:
        for shape in shapes:
            for dname in args.dtypes:
                dtype = DTYPES[dname]
                case = make_inputs(op, shape, dtype, device)
                modes = ["fwd", "fwd+bwd"] + (["double"] if op in DISCRIMINATOR_OPS else [])
                y = getattr(reference, op)(case["x"], *case["args"], **case["kwargs"])
                w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(device=device, dtype=dtype)
                for name, get in impls.items():
                    try:
                        fn = get(op)
                    except Exception as exc:  # an unavailable implementation is a row, not a crash
                        rows.append({"op": op, "shape": list(shape), "dtype": dname, "impl": name,
                                     "error": f"{type(exc).__name__}: {exc}"[:300]})
                        continue
                    if fn is None:
                        continue
                    for mode in modes:
                        row: dict[str, Any] = {"op": op, "shape": list(shape), "dtype": dname, "impl": name,
                                               "mode": mode}
                        if deadline is not None and time.perf_counter() > deadline:
                            row["skipped"] = "stage budget"
                            rows.append(row)
                            continue
                        if name == "compile":
                            torch._dynamo.reset()
                            fn = get(op)
                        step = run_pass(fn, case, mode, w)
                        try:
                            if name == "compile":
                                sync(device)
                                t0 = time.perf_counter()
                                step()
                                sync(device)
                                row["compile_s"] = round(time.perf_counter() - t0, 3)
                            reps, warmup = args.reps, args.warmup
                            if deadline is not None:  # one warm-up call timed first: a slow pass (eager upfirdn2d's
                                # double backward took 3.4 s per call on an H200) must not spend the whole budget
                                t0 = time.perf_counter()
                                step()
                                sync(device)
                                once = time.perf_counter() - t0
                                warmup = max(warmup - 1, 0)
                                reps = reps_that_fit(once, deadline - time.perf_counter(), warmup, reps)
                                if not reps:
                                    row["skipped"] = f"stage budget (one call took {once:.2f} s)"
                                    rows.append(row)
                                    continue
                                if reps < args.reps:
                                    row["reps"] = reps
                            ms, iqr = time_ms(step, device, warmup, reps)
                        except Exception as exc:  # e.g. compile's double backward
                            row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                            rows.append(row)
                            continue
                        nbytes = floor_bytes(op, shape, dtype, mode)
                        floor_ms = nbytes / (bandwidth * 1e9) * 1e3
                        row.update({"ms": round(ms, 4), "iqr_ms": round(iqr, 4), "floor_ms": round(floor_ms, 4),
                                    "gbps": round(nbytes / (ms * 1e-3) / 1e9, 3),
                                    "x_floor": round(ms / floor_ms, 2)})
                        rows.append(row)
                del case
                if device == "cuda":
                    torch.cuda.empty_cache()
    del cuda_backend
    return rows


def training_steps(family: str, G: Any, D: Any, batch: int, res: int, device: str) -> dict[str, Callable[[], None]]:
    """The three phases of a training iteration: G step, D step, and the D regulariser step."""
    real = torch.randn(batch, 3, res, res, device=device)
    z = torch.randn(batch, G.config.latent_dim, device=device)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-4)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-4)
    softplus = torch.nn.functional.softplus

    def g_step() -> None:
        opt_g.zero_grad(set_to_none=True)
        softplus(-D(G(z))).mean().backward()
        opt_g.step()

    def d_step() -> None:
        opt_d.zero_grad(set_to_none=True)
        with torch.no_grad():
            fake = G(z)
        (softplus(D(fake)) + softplus(-D(real))).mean().backward()
        opt_d.step()

    def reg_step() -> None:
        opt_d.zero_grad(set_to_none=True)
        if family == "stylegan":  # R1 on reals
            x = real.detach().requires_grad_(True)
        else:  # WGAN-GP on interpolates
            with torch.no_grad():
                fake = G(z)
            eps = torch.rand(batch, 1, 1, 1, device=device)
            x = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        g.square().sum(dim=(1, 2, 3)).mean().backward()
        opt_d.step()

    return {"G step": g_step, "D step": d_step, ("R1" if family == "stylegan" else "WGAN-GP"): reg_step}


def bench_models(args: argparse.Namespace, device: str) -> list[dict[str, Any]]:
    """A training iteration of our StyleGAN and PGGAN (paper widths, 512 channels at most; default widths in
    quick mode): G step, D step, R1 (StyleGAN) / WGAN-GP (PGGAN) step, with GANFORGE_KERNELS=cuda (ours)
    and ref (eager), at 64x64 and 256x256, batch 32."""
    from ganforge import DataSpec
    from ganforge_plugins.models import pggan, stylegan

    rows = []
    batch = 4 if args.quick else 32
    resolutions = [8] if args.quick else [64, 256]
    widths = {} if args.quick else {"channel_base": 16384, "channel_max": 512}
    classes = {"stylegan": (stylegan.StyleGANGenerator, stylegan.StyleGANGeneratorConfig,
                            stylegan.StyleGANDiscriminator, stylegan.StyleGANDiscriminatorConfig),
               "pggan": (pggan.PGGANGenerator, pggan.PGGANGeneratorConfig,
                         pggan.PGGANDiscriminator, pggan.PGGANDiscriminatorConfig)}
    from ganforge_plugins.ops import kernels_mode

    for family, (g_cls, g_cfg, d_cls, d_cfg) in classes.items():
        for res in resolutions:
            data = DataSpec(shape=(3, res, res))
            for kernels in ["ref"] + (["cuda"] if device == "cuda" else []):
                with kernels_mode(kernels):
                    torch.manual_seed(0)
                    G = g_cls(g_cfg(**widths), data).to(device)
                    D = d_cls(d_cfg(**widths), data).to(device)
                    params = sum(p.numel() for p in D.parameters())
                    for name, step in training_steps(family, G, D, batch, res, device).items():
                        ms, iqr = time_ms(step, device, 2 if args.quick else 5, 3 if args.quick else 20)
                        rows.append({"model": family, "resolution": res, "batch": batch, "kernels": kernels,
                                     "step": name, "ms": round(ms, 3), "iqr_ms": round(iqr, 3), "d_params": params})
    return rows


def metadata(device: str, bandwidth: float, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "copy_bandwidth_gbps": round(bandwidth, 1), "quick": args.quick, "reps": args.reps,
        "nvlabs": args.nvlabs, "python": platform.python_version(),
    }


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]], model_rows: list[dict[str, Any]]) -> str:
    lines = [f"# Fused ops benchmark: {meta['device']}", "",
             f"torch {meta['torch']}, CUDA {meta['cuda']}, {meta['date']}; copy bandwidth "
             f"{meta['copy_bandwidth_gbps']} GB/s (the memory floor's). Median of {meta['reps']} runs.", "",
             "| op | shape | dtype | pass | impl | ms | x floor | GB/s | compile s | note |",
             "|---|---|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        lines.append(f"| {r['op']} | {shape} | {r['dtype']} | {r.get('mode', '')} | {r['impl']} | "
                     f"{r.get('ms', '')} | {r.get('x_floor', '')} | {r.get('gbps', '')} | {r.get('compile_s', '')} | "
                     f"{r.get('error', '')[:80]} |")
    if model_rows:
        lines += ["", "| model | res | batch | kernels | step | ms | D params |", "|---|---|---|---|---|---:|---:|"]
        for r in model_rows:
            lines.append(f"| {r['model']} | {r['resolution']} | {r['batch']} | {r['kernels']} | {r['step']} | "
                         f"{r['ms']} | {r['d_params']} |")
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes, fp32, few repetitions (CPU-friendly)")
    p.add_argument("--ops", nargs="+", default=list(OPS), choices=OPS)
    p.add_argument("--dtypes", nargs="+", default=None, choices=list(DTYPES))
    p.add_argument("--no-compile", dest="compile", action="store_false", help="leave torch.compile out")
    p.add_argument("--nvlabs", metavar="PATH", help="a local stylegan2-ada-pytorch / stylegan3 checkout")
    p.add_argument("--models", action="store_true", help="also time whole StyleGAN / PGGAN training iterations")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON and Markdown")
    args = p.parse_args(argv)
    args.dtypes = args.dtypes or (["fp32"] if args.quick or args.device == "cpu" else list(DTYPES))
    args.reps = args.reps or (3 if args.quick else 50)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 10)
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = args.device
    bandwidth = copy_bandwidth(device, args.quick)
    rows = bench_ops(args, device, bandwidth)
    model_rows = bench_models(args, device) if args.models else []
    meta = metadata(device, bandwidth, args)
    report = {"meta": meta, "rows": rows, "models": model_rows}
    slug = "".join(ch if ch.isalnum() else "-" for ch in meta["device"].lower()).strip("-") or device
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"kernels-{slug}{'-quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(meta, rows, model_rows))
    report["paths"] = [str(stem.with_suffix(".json")), str(stem.with_suffix(".md"))]
    return report


if __name__ == "__main__":
    result = run(parse())
    print(Path(result["paths"][1]).read_text())
    print("wrote", *result["paths"])
    sys.exit(0 if all(math.isfinite(r.get("ms", 0.0)) for r in result["rows"]) else 1)
