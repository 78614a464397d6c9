"""``ganforge kernels build | verify | status``: the CUDA kernels of the ops layer.

    ganforge kernels status            # every op: verified (device, date), disabled (why) or not built (why)
    ganforge kernels verify            # build if needed and re-run every op's self-test on this GPU
    ganforge kernels verify --reference-primitives   # the same self-tests on the CPU, over plain PyTorch
    ganforge kernels build             # prebuild the extension for the visible GPUs (cached)
    ganforge kernels build --arch 9.0  # ... or for an architecture, on a machine without a GPU

See :mod:`ganforge_plugins.ops.cuda_backend` for the cache, the verification and the fallback rules.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import attrs
from ganforge import ConfigError, hookimpl

from ganforge_plugins.ops import cuda_backend, extension
from ganforge_plugins.ops.dispatch import ENV, mode_from_env


@attrs.frozen(kw_only=True)
class KernelsConfig:
    """Settings of ``ganforge kernels`` (none beyond the command line)."""

    verbose: bool = False  # show the compiler's output while building


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows)


class KernelsCommand:
    """Build, verify or list the CUDA kernels (``ganforge kernels build|verify|status``)."""

    def __init__(self, config: KernelsConfig) -> None:
        self.config = config

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=("build", "verify", "status"),
                            help="build the extension, re-run its self-verification, or list the ops")
        parser.add_argument("--arch", help="build: TORCH_CUDA_ARCH_LIST to build for, e.g. 9.0 (default: the "
                                           "visible GPUs)")
        parser.add_argument("--reference-primitives", action="store_true",
                            help="verify: run the self-tests on the CPU over the plain-PyTorch primitives "
                                 "(checks the verification itself; writes nothing)")

    def run(self, args: argparse.Namespace, manager: Any) -> int:
        if args.action == "status":
            print(f"{ENV}={mode_from_env()}")
            print(_table([("op", "state", "backend", "detail"), *cuda_backend.status()]))
            return 0
        if args.action == "verify":
            return self.verify(args)
        try:
            built = extension.build(arch=args.arch, verbose=self.config.verbose)
        except extension.KernelsUnavailable as exc:
            raise ConfigError(f"kernels build: {exc}") from exc
        print(f"built {built.module.__name__} in {built.directory}")
        return 0

    def verify(self, args: argparse.Namespace) -> int:
        t0 = time.perf_counter()
        if args.reference_primitives:
            verdicts = cuda_backend.verify_ops(cuda_backend.RefPrimitives(), "cpu")
            rows = [(v.op, "verified" if v.ok else "disabled", f"{v.checks} checks in {v.seconds:.2f} s"
                     if v.ok else str(v.failure)) for v in verdicts.values()]
            print(f"self-verification over the reference primitives on the CPU ({time.perf_counter() - t0:.2f} s):")
            print(_table([("op", "state", "detail"), *rows]))
            return 0 if all(v.ok for v in verdicts.values()) else 1
        try:
            built = extension.build(verbose=self.config.verbose)
        except extension.KernelsUnavailable as exc:
            raise ConfigError(f"kernels verify: {exc}; `ganforge kernels verify --reference-primitives` runs the "
                              "self-tests on the CPU") from exc
        verdict = cuda_backend.verified(built, force=True)
        rows = [(op, "verified" if e["ok"] else "disabled", f"{e['checks']} checks in {e['seconds']:.2f} s"
                 if e["ok"] else str(e["failure"])) for op, e in verdict["ops"].items()]
        print(f"self-verification on {verdict['device']} ({verdict['seconds']:.2f} s), "
              f"saved in {built.directory / extension.VERDICT}:")
        print(_table([("op", "state", "detail"), *rows]))
        return 0 if all(e["ok"] for e in verdict["ops"].values()) else 1


@hookimpl
def ganforge_register_commands(register):
    register("kernels", KernelsCommand, KernelsConfig)
