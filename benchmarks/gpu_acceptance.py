"""One command that measures everything the CUDA kernels promise, on an H100 / H200, in 8 minutes.

    python benchmarks/gpu_acceptance.py --mnist ../shared/data/mnist [--nvlabs ~/src/stylegan3]
    python benchmarks/gpu_acceptance.py --dry-run      # every stage at tiny sizes on the CPU (CI)

Stages, each stopped at its time budget (``--budget`` seconds in all, 480 by default, build included),
so that a partial run still reports what it measured:

0. **build**: build (or load from the cache) the extension and run its self-verification, timed apart.
1. **gpu tests**: the ``gpu``-marked correctness tests (``pytest -m gpu tests/plugins/test_ops_cuda.py``).
2. **ops**: every fused op at 32x512x16x16, 64x512x64x64 and 16x64x256x256 in fp32 and bf16; forward,
   forward+backward, and double backward for the discriminator's ops: the eager reference, our kernel
   and NVlabs' op where the same op exists (``--nvlabs`` checkout), then ``torch.compile`` of the
   reference (compile time reported apart) while its budget lasts; ms, GB/s and multiples of the
   measured copy-bandwidth floor (see :mod:`benchmarks.kernels_report`).
3. **models**: our StyleGAN discriminator's R1 step at 64x64 batch 32, and a full StyleGAN iteration
   (G step + D step, R1 every 16 D steps), kernels against the reference in one process.
4. **training**: StyleGAN on MNIST (``configs/stylegan-mnist.toml``), about a minute with
   ``GANFORGE_KERNELS=cuda``, stopped by SIGINT, then the same number of steps with ``ref``:
   images/s of each and the difference of the generators' final weights.

``--stages`` and ``--ops`` narrow a run (a second run in the same lease, after a fix, measures only what
changed); ``--stage-budget STAGE=SECONDS`` moves one stage's budget.

Writes ``benchmarks/results/gpu-acceptance-<device>.json`` (device, driver, torch, CUDA, date,
every number) and ``.md``. ``--dry-run`` runs every stage at tiny sizes on the CPU, with the kernels'
Functions over the plain-PyTorch primitives standing in for the extension (``torch.compile`` with
the ``aot_eager`` backend, the embedded digits for the training) and writes
``gpu-acceptance-cpu-dry-run.*``, every value marked as measured on the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(ROOT))

from benchmarks import kernels_report as kr  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SHAPES = [(32, 512, 16, 16), (64, 512, 64, 64), (16, 64, 256, 256)]
DRY_SHAPES = [(4, 8, 4, 4), (4, 8, 8, 8), (2, 4, 16, 16)]
DTYPES = ("fp32", "bf16")
# seconds per stage: build and verify, gpu tests, ops (kernels / compile), models, training (each run). On an
# H200 (2026-12-04) the build took 31-36 s and the verification 1.9 s; the 33 gpu tests 74 s in pytest, 80 s
# with its start-up, so 45 s stopped them every time
BUDGETS = {"build": 90.0, "gpu_tests": 90.0, "ops": 60.0, "compile": 60.0, "models": 40.0, "training": 55.0}
# models: its two rows take about 6 s each on 2 loaded cores; at 10 s the second was skipped and the test failed
DRY_BUDGETS = {"build": 10.0, "gpu_tests": 40.0, "ops": 15.0, "compile": 32.0, "models": 30.0, "training": 4.0}
STAGES = ("build", "gpu_tests", "ops", "models", "training")


class Budget:
    """A stage's clock: ``left()`` seconds remain of ``seconds`` (and of the whole run's deadline)."""

    def __init__(self, seconds: float, deadline: float) -> None:
        self.t0 = time.perf_counter()
        self.end = min(self.t0 + seconds, deadline)
        self.seconds = seconds

    def left(self) -> float:
        return self.end - time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


# -- the machine ------------------------------------------------------------------------------------------------


def metadata(args: argparse.Namespace, device: str) -> dict[str, Any]:
    driver = None
    if device == "cuda":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    return {
        "device": (torch.cuda.get_device_name() if device == "cuda"
                   else f"CPU: {platform.processor() or platform.machine()}"),
        "measured_on": "cuda" if device == "cuda" else "cpu (dry run: values from the CPU, not GPU numbers)",
        "dry_run": args.dry_run, "driver": driver, "torch": torch.__version__, "cuda": torch.version.cuda,
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_average": [round(v, 2) for v in os.getloadavg()], "budget_s": args.budget,
        "nvlabs": args.nvlabs, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


@contextlib.contextmanager
def cpu_stand_in() -> Iterator[None]:
    """For the dry run: the ``cuda`` backend's Functions over the plain-PyTorch primitives, for CPU tensors
    under ``kernels_mode("cuda")``, so that every stage runs the kernels' autograd wiring. Restored after."""
    from ganforge_plugins.ops import cuda_backend, dispatch

    saved = dict(dispatch._BACKENDS)
    prim = cuda_backend.RefPrimitives()

    def over_reference_primitives(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        return lambda *a, **k: fn(*a, prim=prim, **k)

    stand_in = {name: over_reference_primitives(fn) for name, fn in cuda_backend.OPS.items()}
    dispatch.register_backend("cuda", stand_in, why_not=lambda op, x: None)
    try:
        yield
    finally:
        dispatch._BACKENDS.clear()
        dispatch._BACKENDS.update(saved)


# -- 0. build and verify ---------------------------------------------------------------------------------------


def stage_build(args: argparse.Namespace, budget: Budget) -> dict[str, Any]:
    from ganforge_plugins.ops import cuda_backend, extension

    out: dict[str, Any] = {"nvcc": extension.nvcc_version(), "toolchain_problem": extension.toolchain_problem()}
    if args.dry_run:
        t0 = time.perf_counter()
        verdicts = cuda_backend.verify_ops(cuda_backend.RefPrimitives(), "cpu")
        out.update(build_s=None, note="dry run: nothing built; self-verification over the reference primitives",
                   verify_s=round(time.perf_counter() - t0, 3), verdict=cuda_backend._record(verdicts))
        out["status"] = "done" if all(v.ok for v in verdicts.values()) else "failed"
        return out
    t0 = time.perf_counter()
    built = extension.build()
    out["build_s"] = round(time.perf_counter() - t0, 2)
    out["build_dir"] = str(built.directory)
    verdict = cuda_backend.verified(built, force=True)
    out.update(verify_s=verdict["seconds"], verdict=verdict["ops"], device_label=verdict["device"])
    out["status"] = "done" if all(e["ok"] for e in verdict["ops"].values()) else "failed"
    return out


# -- 1. the gpu-marked tests --------------------------------------------------------------------------------------


def stage_gpu_tests(args: argparse.Namespace, budget: Budget) -> dict[str, Any]:
    test = ROOT / "tests" / "plugins" / "test_ops_cuda.py"
    command = [sys.executable, "-m", "pytest", "-m", "gpu", str(test), "-q", "-p", "no:cacheprovider", "-rfE",
               "--tb=line"]
    if args.dry_run:  # no GPU: collect them (they must still import and parametrize)
        command.append("--collect-only")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "core"), str(ROOT / "plugins"), str(ROOT),
                                                         os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=max(budget.left(), 1.0), cwd=ROOT,
                              env=env)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        # pytest may have printed its summary and still be exiting (on an H200 the 33 tests passed in 74 s of
        # an 80 s budget): the counts it printed are kept, and the status says the process was stopped
        return {"status": "partial", "note": f"stopped at the stage budget ({budget.seconds:.0f} s)",
                "counts": _test_counts(tail), "tail": tail[-1500:]}
    text = proc.stdout + proc.stderr
    counts = _test_counts(text)
    collected = re.search(r"(\d+)(?:/\d+)? tests? collected", text)
    if args.dry_run and collected:
        counts["collected"] = int(collected.group(1))
    ok = proc.returncode == 0 and not counts.get("failed") and not counts.get("errors")
    failures = [line[:400] for line in text.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return {"status": "done" if ok else "failed", "returncode": proc.returncode, "counts": counts,
            "failures": failures,
            "note": "dry run: collected, not run (no GPU)" if args.dry_run else "", "tail": text[-1500:]}


def _test_counts(text: str) -> dict[str, int]:
    return {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", text)}


# -- 2. the ops ---------------------------------------------------------------------------------------------------


def _op_args(args: argparse.Namespace, device: str, impls: list[str], shapes: list[tuple[int, ...]],
             reps: int, warmup: int) -> argparse.Namespace:
    return argparse.Namespace(ops=list(args.ops), dtypes=list(DTYPES), quick=False, nvlabs=args.nvlabs,
                              compile="compile" in impls, reps=reps, warmup=warmup, device=device, impls=impls,
                              shapes=shapes)


def stage_ops(args: argparse.Namespace, device: str, budgets: dict[str, float], deadline: float,
              bandwidth: float) -> dict[str, Any]:
    """Eager, ours and NVlabs' first, within ``budgets["ops"]``; then torch.compile within ``budgets["compile"]``."""
    shapes = DRY_SHAPES if args.dry_run else SHAPES
    reps, warmup = (3, 1) if args.dry_run else (30, 5)
    impls = kr.implementations(device, args.nvlabs, with_compile=False)
    budget = Budget(budgets["ops"], deadline)
    rows = kr.bench_ops(_op_args(args, device, list(impls), shapes, reps, warmup), device, bandwidth,
                        deadline=budget.end)
    out: dict[str, Any] = {"shapes": [list(s) for s in shapes], "dtypes": list(DTYPES), "reps": reps,
                           "copy_bandwidth_gbps": round(bandwidth, 1), "rows": rows}
    timed = [r for r in rows if "ms" in r]
    skipped = [r for r in rows if r.get("skipped")]
    if args.compile:
        compile_budget = Budget(budgets["compile"], deadline)
        backend = "aot_eager" if args.dry_run else "inductor"
        crow = kr.bench_ops(_op_args(args, device, ["compile"], shapes, reps, warmup), device, bandwidth,
                            deadline=compile_budget.end, compile_backend=backend)
        rows.extend(crow)
        out["compile_backend"] = backend
        out["compile_wall_s"] = round(compile_budget.elapsed(), 2)
        skipped += [r for r in crow if r.get("skipped")]
    out["status"] = "partial" if skipped else "done"
    out["timed_rows"], out["skipped_rows"] = len(timed), len(skipped)
    return out


# -- 3. models ----------------------------------------------------------------------------------------------------


def stage_models(args: argparse.Namespace, device: str, budget: Budget) -> dict[str, Any]:
    from ganforge import DataSpec
    from ganforge_plugins.models import stylegan
    from ganforge_plugins.ops import kernels_mode

    res, batch = (8, 4) if args.dry_run else (64, 32)
    widths = {} if args.dry_run else {"channel_base": 16384, "channel_max": 512}
    reps = 2 if args.dry_run else 5
    rows: list[dict[str, Any]] = []
    stand_in = cpu_stand_in() if args.dry_run else contextlib.nullcontext()
    with stand_in:
        for kernels in ("ref", "cuda"):
            if budget.left() <= 0:
                rows.append({"kernels": kernels, "skipped": "stage budget"})
                continue
            with kernels_mode(kernels):
                torch.manual_seed(0)
                data = DataSpec(shape=(3, res, res))
                G = stylegan.StyleGANGenerator(stylegan.StyleGANGeneratorConfig(**widths), data).to(device)
                D = stylegan.StyleGANDiscriminator(stylegan.StyleGANDiscriminatorConfig(**widths), data).to(device)
                steps = kr.training_steps("stylegan", G, D, batch, res, device)

                def iteration(steps: dict[str, Callable[[], None]] = steps) -> None:
                    for _ in range(16):  # 16 D steps with a G step each, then the lazy R1
                        steps["G step"]()
                        steps["D step"]()
                    steps["R1"]()

                r1_ms, r1_iqr = kr.time_ms(steps["R1"], device, 2, reps * 4)
                it_ms, it_iqr = kr.time_ms(iteration, device, 1, reps)
                rows.append({"kernels": kernels, "resolution": res, "batch": batch,
                             "d_params": sum(p.numel() for p in D.parameters()),
                             "r1_step_ms": round(r1_ms, 3), "r1_step_iqr_ms": round(r1_iqr, 3),
                             "iteration_ms": round(it_ms / 16, 3), "iteration_iqr_ms": round(it_iqr / 16, 3)})
                del G, D, steps
                if device == "cuda":
                    torch.cuda.empty_cache()
    by = {r["kernels"]: r for r in rows if "r1_step_ms" in r}
    out: dict[str, Any] = {"rows": rows, "note": "iteration = (16 x (G step + D step) + R1) / 16"}
    if {"ref", "cuda"} <= set(by):
        out["r1_speedup"] = round(by["ref"]["r1_step_ms"] / by["cuda"]["r1_step_ms"], 3)
        out["iteration_speedup"] = round(by["ref"]["iteration_ms"] / by["cuda"]["iteration_ms"], 3)
    out["status"] = "done" if len(by) == 2 else "partial"
    if args.dry_run:
        out["note"] += "; dry run: 'cuda' is the kernels' Functions over the plain-PyTorch primitives"
    return out


# -- 4. training ----------------------------------------------------------------------------------------------------


DRY_CONFIG = """\
# the dry run's stand-in for configs/stylegan-mnist.toml: the embedded digits, a tiny StyleGAN
[data]
name = "digits"
resolution = 8
[generator]
name = "stylegan"
latent_dim = 16
w_dim = 16
mapping_layers = 2
channel_base = 64
channel_max = 16
[discriminator]
name = "stylegan"
channel_base = 64
channel_max = 16
[loss]
name = "non-saturating"
[[regularizers]]
name = "r1"
gamma = 1.0
every = 4
[train]
batch_size = 8
"""


def _train(config: Path, out: Path, kernels: str, steps: int, overrides: list[str], seconds: float | None,
           timeout: float) -> dict[str, Any]:
    """One ``ganforge train`` run; with ``seconds``, stopped by SIGINT that long after its first logged step."""
    sets = [f"train.steps={steps}", "output.log_every=20", "output.sample_every=1000000",
            "output.checkpoint_every=1000000", "output.progress=false", *overrides]
    command = [sys.executable, "-m", "ganforge", "train", str(config), "--out", str(out)]
    for s in sets:
        command += ["--set", s]
    env = {**os.environ, "GANFORGE_KERNELS": kernels, "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    metrics = out / "metrics.jsonl"
    started = None
    stopped = False
    while proc.poll() is None:
        if started is None and metrics.is_file() and metrics.stat().st_size > 0:
            started = time.perf_counter()
        if seconds is not None and started is not None and time.perf_counter() - started >= seconds and not stopped:
            proc.send_signal(signal.SIGINT)
            stopped = True
        if time.perf_counter() - t0 > timeout and not stopped:
            proc.send_signal(signal.SIGINT)
            stopped = True
        time.sleep(0.2)
    log = proc.stdout.read() if proc.stdout else ""
    lines = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
    ips = [r["images_per_sec"] for r in lines[1:]] or [r["images_per_sec"] for r in lines]
    latest = out / "checkpoints" / "latest"
    step = int(latest.read_text().strip().removeprefix("step-")) if latest.is_file() else 0
    return {"kernels": kernels, "returncode": proc.returncode, "stopped_by_sigint": stopped, "steps": step,
            "wall_s": round(time.perf_counter() - t0, 2),
            "images_per_sec": round(sum(ips) / len(ips), 1) if ips else None,
            "log_tail": log[-600:] if proc.returncode not in (0, 130) else ""}


def _generator_weights(run: Path) -> dict[str, torch.Tensor]:
    from ganforge.inference import load_run

    loaded = load_run(run, device="cpu", ema=False)  # the trained weights, not their moving average
    return {k: v.detach().double() for k, v in loaded.networks["generator"].state_dict().items()}


def stage_training(args: argparse.Namespace, device: str, budget_s: float, work: Path) -> dict[str, Any]:
    if args.dry_run:
        config = work / "stylegan-digits-tiny.toml"
        config.write_text(DRY_CONFIG)
        overrides = ["train.device=cpu"]
        kernels = ("auto", "ref")  # no GPU: both on the reference, so the weights must agree exactly
    else:
        config = ROOT / "configs" / "stylegan-mnist.toml"
        overrides = ["train.device=cuda"] + ([f"data.root={Path(args.mnist).resolve()}"] if args.mnist else [])
        kernels = ("cuda", "ref")
    first = _train(config, work / "run-kernels", kernels[0], 10**7, overrides, seconds=budget_s,
                   timeout=budget_s + 120)
    out: dict[str, Any] = {"config": str(config.relative_to(ROOT) if config.is_relative_to(ROOT) else config.name),
                           "runs": [first]}
    if not first["steps"]:
        out["status"] = "failed"
        return out
    second = _train(config, work / "run-ref", kernels[1], first["steps"], overrides, seconds=None,
                    timeout=budget_s * 3 + 60)
    out["runs"].append(second)
    if second["steps"] == first["steps"]:
        a, b = _generator_weights(work / "run-kernels"), _generator_weights(work / "run-ref")
        diffs = {k: float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point()}
        norm = sum(float(a[k].square().sum()) for k in diffs) ** 0.5
        out["generator_weights"] = {
            "max_abs_diff": max(diffs.values()), "worst_tensor": max(diffs, key=diffs.__getitem__),
            "relative_l2_diff": (sum(float((a[k] - b[k]).square().sum()) for k in diffs) ** 0.5) / max(norm, 1e-30),
            "tensors": len(diffs)}
        out["status"] = "done"
    else:
        out["status"] = "partial"
        out["note"] = "the reference run did not reach the kernels run's step within its budget"
    if first["images_per_sec"] and second["images_per_sec"]:
        out["speedup"] = round(first["images_per_sec"] / second["images_per_sec"], 3)
    if args.dry_run:
        out["note"] = "dry run: both runs on the CPU reference (GANFORGE_KERNELS=auto on a CPU, then ref)"
    return out


# -- report ---------------------------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    m, s = report["meta"], report["stages"]
    lines = [f"# GPU acceptance: {m['device']}", "",
             f"Measured on {m['measured_on']}; torch {m['torch']}, CUDA {m['cuda']}, driver {m['driver']}, "
             f"{m['date']}, load average {m['load_average']}. Wall {report['wall_s']} s of a {m['budget_s']} s budget.",
             f"Command: `{m['command']}`", "", "| stage | status | wall s | budget s |", "|---|---|---:|---:|"]
    for name in STAGES:
        st = s[name]
        lines.append(f"| {name} | {st.get('status')} | {st.get('wall_s')} | {st.get('budget_s')} |")
    b = s["build"]
    lines += ["", "## Build and self-verification", "",
              f"Build {b.get('build_s')} s, verification {b.get('verify_s')} s. {b.get('note', '')}", "",
              "| op | verified | checks | failure |", "|---|---|---:|---|"]
    for op, e in (b.get("verdict") or {}).items():
        lines.append(f"| {op} | {e['ok']} | {e['checks']} | {e['failure'] or ''} |")
    t = s["gpu_tests"]
    lines += ["", "## gpu-marked tests", "", f"{t.get('status')}: {t.get('counts')} {t.get('note', '')}"]
    lines += [f"- `{f}`" for f in t.get("failures") or []]
    o = s["ops"]
    lines += ["", "## Ops", "", f"Copy bandwidth {o.get('copy_bandwidth_gbps')} GB/s (the floor's); median of "
              f"{o.get('reps')} runs; compile backend {o.get('compile_backend')}.", "",
              "| op | shape | dtype | pass | impl | ms | GB/s | x floor | compile s | note |",
              "|---|---|---|---|---|---:|---:|---:|---:|---|"]
    for r in o.get("rows", []):
        lines.append(f"| {r['op']} | {'x'.join(map(str, r['shape']))} | {r['dtype']} | {r.get('mode', '')} | "
                     f"{r['impl']} | {r.get('ms', '')} | {r.get('gbps', '')} | {r.get('x_floor', '')} | "
                     f"{r.get('compile_s', '')} | {(r.get('error') or r.get('skipped') or '')[:60]} |")
    md = s["models"]
    lines += ["", "## StyleGAN steps", "", md.get("note", ""), "",
              "| kernels | res | batch | R1 step ms | iteration ms |", "|---|---:|---:|---:|---:|"]
    for r in md.get("rows", []):
        lines.append(f"| {r['kernels']} | {r.get('resolution', '')} | {r.get('batch', '')} | "
                     f"{r.get('r1_step_ms', r.get('skipped', ''))} | {r.get('iteration_ms', '')} |")
    lines.append(f"\nSpeed-up (ref / kernels): R1 {md.get('r1_speedup')}, iteration {md.get('iteration_speedup')}.")
    tr = s["training"]
    lines += ["", "## Training", "", f"{tr.get('config')}: {tr.get('note', '')}", "",
              "| kernels | steps | images/s | wall s | stopped by SIGINT |", "|---|---:|---:|---:|---|"]
    for r in tr.get("runs", []):
        lines.append(f"| {r['kernels']} | {r['steps']} | {r['images_per_sec']} | {r['wall_s']} | "
                     f"{r['stopped_by_sigint']} |")
    lines.append(f"\nGenerator weights, kernels vs reference: {tr.get('generator_weights')}; speed-up "
                 f"{tr.get('speedup')}.")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_acceptance: no CUDA device here; --dry-run runs every stage on the CPU")
    budgets = {**(DRY_BUDGETS if args.dry_run else BUDGETS), **args.stage_budget}
    t0 = time.perf_counter()
    deadline = t0 + args.budget
    scratch = tempfile.TemporaryDirectory(prefix="ganforge-gpu-acceptance-")  # the training runs
    work = Path(scratch.name)
    args.out.mkdir(parents=True, exist_ok=True)
    stages: dict[str, Any] = {name: {"status": "pending"} for name in STAGES}
    meta = metadata(args, device)
    slug = "cpu-dry-run" if args.dry_run else re.sub(r"[^a-z0-9]+", "-", meta["device"].lower()).strip("-")
    stem = args.out / f"gpu-acceptance-{slug}"

    def write() -> dict[str, Any]:
        # after every stage, so that a run killed at its lease's limit still leaves what it measured; atomic,
        # so that a kill during a write leaves the previous stage's report, not half of this one
        from ganforge import atomic_write_text

        report = {"meta": meta, "stages": stages, "wall_s": round(time.perf_counter() - t0, 2)}
        atomic_write_text(stem.with_suffix(".json"), json.dumps(report, indent=1) + "\n")
        atomic_write_text(stem.with_suffix(".md"), markdown(report))
        return report

    def stage(name: str, fn: Callable[[Budget], dict[str, Any]], seconds: float) -> None:
        run_stage(name, fn, seconds)
        print(f"gpu_acceptance: {name} {stages[name]['status']} in {stages[name]['wall_s']} s", flush=True)
        write()

    def run_stage(name: str, fn: Callable[[Budget], dict[str, Any]], seconds: float) -> None:
        budget = Budget(seconds, deadline)
        if name not in args.stages:
            stages[name] = {"status": "not run", "note": "not among --stages", "budget_s": seconds, "wall_s": 0.0}
            return
        if budget.left() <= 1:
            stages[name] = {"status": "skipped", "note": "the run's budget was spent", "budget_s": seconds,
                            "wall_s": 0.0}
            return
        try:
            result = fn(budget)
        except Exception as exc:  # a stage that breaks is reported, and the next still runs
            result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:800]}
        stages[name] = {**result, "budget_s": seconds, "wall_s": round(budget.elapsed(), 2)}

    stage("build", lambda b: stage_build(args, b), budgets["build"])
    stage("gpu_tests", lambda b: stage_gpu_tests(args, b), budgets["gpu_tests"])
    bandwidth = kr.copy_bandwidth(device, quick=args.dry_run) if "ops" in args.stages else math.nan
    stage("ops", lambda b: stage_ops(args, device, budgets, deadline, bandwidth), budgets["ops"] + budgets["compile"])
    stage("models", lambda b: stage_models(args, device, b), budgets["models"])
    stage("training", lambda b: stage_training(args, device, budgets["training"], work), budgets["training"] * 3)
    scratch.cleanup()
    meta["load_average"] = [round(v, 2) for v in os.getloadavg()]  # at the end, beside the wall times
    report = write()
    report["paths"] = [str(stem.with_suffix(".json")), str(stem.with_suffix(".md"))]
    return report


def _names(choices: tuple[str, ...], option: str) -> Callable[[str], list[str]]:
    def parse_names(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"{option}={text!r}: expected a comma-separated list of "
                                             f"{', '.join(choices)}")
        return names
    return parse_names


def _stage_budget(text: str) -> tuple[str, float]:
    name, _, seconds = text.partition("=")
    try:
        value = float(seconds)
    except ValueError:
        value = math.nan
    if name not in BUDGETS or not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"--stage-budget={text!r}: expected STAGE=SECONDS with STAGE one of "
                                         f"{', '.join(BUDGETS)} and SECONDS a positive number")
    return name, value


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="every stage at tiny sizes on the CPU (what CI runs)")
    p.add_argument("--mnist", help="the MNIST directory for the training stage (default: the config's root)")
    p.add_argument("--nvlabs", metavar="PATH", help="a local stylegan2-ada-pytorch / stylegan3 checkout")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="leave torch.compile out")
    p.add_argument("--budget", type=float, default=None, help="seconds in all (default 480; dry run 130)")
    p.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON and Markdown")
    p.add_argument("--stages", type=_names(STAGES, "--stages"), default=list(STAGES),
                   help=f"comma-separated stages to run (default: all of {','.join(STAGES)})")
    p.add_argument("--ops", type=_names(kr.OPS, "--ops"), default=list(kr.OPS),
                   help="comma-separated ops for the ops stage (default: all)")
    p.add_argument("--stage-budget", type=_stage_budget, action="append", default=[], metavar="STAGE=SECONDS",
                   help=f"override one stage's seconds ({', '.join(BUDGETS)}); repeatable")
    args = p.parse_args(argv)
    args.stage_budget = dict(args.stage_budget)
    if args.budget is None:
        args.budget = 130.0 if args.dry_run else 480.0
    return args


if __name__ == "__main__":
    result = run(parse())
    print(Path(result["paths"][1]).read_text())
    print("wrote", *result["paths"])
    failed = [k for k, v in result["stages"].items() if v.get("status") in ("failed", "error")]
    sys.exit(1 if failed else 0)
