"""Building, caching and loading the CUDA extension, and the cache of its self-verification verdicts.

The extension (``csrc/``) is built with :func:`torch.utils.cpp_extension.load` into
``$GANFORGE_KERNELS_CACHE`` (default ``~/.cache/ganforge/kernels``)``/<key>``. The key hashes
everything the binary depends on: the sources, the PyTorch, CUDA and nvcc versions, the Python
version and the GPU architectures. Builds of one key take a file lock. A build directory whose
binary does not load (a truncated file, a half-finished build from a killed process) is removed and
built again once, not trusted.

Beside the binary, ``verdict.json`` records the self-verification (:mod:`.verify`) per device:
which ops agreed with their references, and for each that did not, the failing case. It is trusted
only when its schema, build key and *verification key* (a hash of the ops' Python modules, their
cases and wiring, and the PyTorch version) all match; anything else (unreadable, truncated, stale)
is verified again and rewritten atomically.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import attrs
import torch

HERE = Path(__file__).resolve().parent
CSRC = HERE / "csrc"
SOURCES = ("ops.cpp", "bias_act.cu", "upfirdn2d.cu", "norm.cu")
HEADERS = ("common.cuh",)
MIN_CAPABILITY = (7, 0)  # Volta: bfloat16 storage and __shfl_down_sync on every type used
VERDICT = "verdict.json"
VERDICT_SCHEMA = 1


class KernelsUnavailable(RuntimeError):
    """The CUDA extension cannot be built or loaded here; the message says why."""


@attrs.frozen
class Built:
    """A loaded extension: the module ``load()`` returned, its key and its directory."""

    module: Any
    key: str
    directory: Path


# -- the toolchain -----------------------------------------------------------------------------------------


def cache_root() -> Path:
    if os.environ.get("GANFORGE_KERNELS_CACHE"):
        return Path(os.environ["GANFORGE_KERNELS_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ganforge" / "kernels"


def cuda_home() -> str | None:
    from torch.utils import cpp_extension

    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or cpp_extension.CUDA_HOME
    return str(home) if home else None


def nvcc_path() -> str | None:
    home = cuda_home()
    if home and (Path(home) / "bin" / "nvcc").is_file():
        return str(Path(home) / "bin" / "nvcc")
    return shutil.which("nvcc")


def nvcc_version() -> str:
    nvcc = nvcc_path()
    if nvcc is None:
        return "none"
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip().splitlines()[-1] if out.strip() else "unknown"


def device_archs() -> str | None:
    """``TORCH_CUDA_ARCH_LIST`` for the visible GPUs (``"9.0"``), or None without one."""
    if not torch.cuda.is_available():
        return None
    caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
    return ";".join(f"{a}.{b}" for a, b in caps)


def device_label(index: int | None = None) -> str:
    """``"NVIDIA H200 (sm_90)"`` for a CUDA device (default: the current one)."""
    index = torch.cuda.current_device() if index is None else index
    major, minor = torch.cuda.get_device_capability(index)
    return f"{torch.cuda.get_device_name(index)} (sm_{major}{minor})"


def toolchain_problem(*, need_device: bool = True) -> str | None:
    """Why the extension cannot be built (or, with ``need_device``, run) here; None when it can."""
    if torch.version.cuda is None:
        return "PyTorch was built without CUDA"
    if need_device:
        if not torch.cuda.is_available():
            return "no CUDA device (torch.cuda.is_available() is False)"
        for i in range(torch.cuda.device_count()):
            cap = torch.cuda.get_device_capability(i)
            if cap < MIN_CAPABILITY:
                return (f"unsupported GPU {torch.cuda.get_device_name(i)} (sm_{cap[0]}{cap[1]}; "
                        f"the kernels need sm_{MIN_CAPABILITY[0]}{MIN_CAPABILITY[1]} or newer)")
    if nvcc_path() is None:
        return f"no nvcc (CUDA_HOME={cuda_home()!r}; set CUDA_HOME to a CUDA toolkit)"
    # imported only now: its import looks for CUDA and warns on a machine without it, which `kernels
    # status` on a CPU machine should not print before saying the same thing itself
    from torch.utils import cpp_extension

    if not cpp_extension.is_ninja_available():
        return "no ninja (pip install ninja)"
    return None


def build_key(arch: str) -> str:
    """Hash of everything the binary depends on: sources, PyTorch, CUDA and nvcc versions, GPU archs."""
    h = hashlib.sha256()
    for name in (*SOURCES, *HEADERS):
        h.update(name.encode())
        h.update((CSRC / name).read_bytes())
    for part in (torch.__version__, str(torch.version.cuda), nvcc_version(), arch, platform.python_version()):
        h.update(part.encode())
    return h.hexdigest()[:20]


def verify_key() -> str:
    """Hash of what the verdict depends on besides the binary: the ops' Python (their cases, tolerances
    and autograd wiring) and the PyTorch version."""
    h = hashlib.sha256(torch.__version__.encode())
    for path in sorted(HERE.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:20]


# -- building and loading -----------------------------------------------------------------------------------


def _load(key: str, directory: Path, arch: str, verbose: bool) -> Any:
    from torch.utils import cpp_extension

    saved = os.environ.get("TORCH_CUDA_ARCH_LIST")
    os.environ["TORCH_CUDA_ARCH_LIST"] = arch  # read by load(); restored at once
    try:
        return cpp_extension.load(
            name=f"ganforge_kernels_{key}", sources=[str(CSRC / s) for s in SOURCES],
            build_directory=str(directory), extra_cflags=["-O3"], extra_cuda_cflags=["-O3"], verbose=verbose)
    finally:
        if saved is None:
            os.environ.pop("TORCH_CUDA_ARCH_LIST", None)
        else:
            os.environ["TORCH_CUDA_ARCH_LIST"] = saved


def build(*, arch: str | None = None, verbose: bool = False) -> Built:
    """Build (or load from the cache) the extension. ``arch``: ``TORCH_CUDA_ARCH_LIST`` to compile for
    (default: the visible GPUs), so a machine without a GPU can prebuild for one. Raises
    :class:`KernelsUnavailable` naming the reason."""
    from filelock import FileLock

    problem = toolchain_problem(need_device=arch is None)
    if problem:
        raise KernelsUnavailable(problem)
    arch = str(arch or device_archs())
    key = build_key(arch)
    directory = cache_root() / key
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_root() / f"{key}.lock")):
        try:
            module = _load(key, directory, arch, verbose)
        except Exception as first:
            if not any(directory.glob("*.so")):  # nothing cached to blame: a compile error
                raise KernelsUnavailable(_compile_error(first)) from first
            # a cached binary that does not load is corrupt (a truncated file, a killed build): rebuild
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True, exist_ok=True)
            try:
                module = _load(key, directory, arch, verbose)
            except Exception as exc:
                raise KernelsUnavailable(_compile_error(exc)) from exc
    return Built(module, key, directory)


def _compile_error(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]  # the compiler's last lines name the error
    return "compile error: " + " | ".join(lines[-12:])


def is_built(key: str) -> bool:
    return any((cache_root() / key).glob("*.so"))


# -- verdicts ---------------------------------------------------------------------------------------------------


def read_verdict(key: str, device: str, ops: list[str]) -> dict[str, Any] | None:
    """The cached verification of build ``key`` on ``device``: ``{"date", "seconds", "ops": {op: {...}}}``,
    or None when there is none to trust (absent, unreadable, another schema, build or verification key,
    or not covering ``ops``)."""
    path = cache_root() / key / VERDICT
    try:
        data = json.loads(path.read_text())
        entry = data["devices"][device]
        trusted = (data["schema"] == VERDICT_SCHEMA and data["build_key"] == key
                   and data["verify_key"] == verify_key() and sorted(entry["ops"]) == sorted(ops)
                   and all(isinstance(v["ok"], bool) for v in entry["ops"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return entry if trusted else None


def write_verdict(key: str, device: str, ops: dict[str, dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Record a verification of build ``key`` on ``device`` (atomically, keeping other devices' entries
    when they are still valid); returns the entry."""
    from filelock import FileLock

    path = cache_root() / key / VERDICT
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "seconds": round(seconds, 3),
             "torch": torch.__version__, "ops": ops}
    with FileLock(str(path) + ".lock"):
        devices: dict[str, Any] = {}
        try:
            old = json.loads(path.read_text())
            if old.get("build_key") == key and old.get("verify_key") == verify_key():
                devices = dict(old["devices"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        devices[device] = entry
        data = {"schema": VERDICT_SCHEMA, "build_key": key, "verify_key": verify_key(), "devices": devices}
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, path)
    return entry
