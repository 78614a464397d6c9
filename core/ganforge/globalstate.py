"""The process-wide torch state a training run uses, kept by the run and lent to torch only while the
run works: the default random generators (network initialisation, dropout, noise inputs draw from
them) and deterministic-algorithms mode. A library must leave the caller's process as it found it;
a run must be reproducible whatever its caller did before."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor


class GlobalTorchState:
    """The run's own copy of the default generators (CPU, and the run's GPU) and deterministic mode.

    ``active()`` swaps them in and, on leaving, keeps their new state and puts the caller's back; it
    may be entered again inside itself (``fit`` calls ``train_step``), where it only counts.
    """

    def __init__(self, device: torch.device, seed: int, *, deterministic: bool = False) -> None:
        self.cuda = device if device.type == "cuda" else None
        self.deterministic = deterministic
        self._depth = 0
        gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=gpus):  # seeded without touching the caller's generators
            torch.manual_seed(seed)
            self._cpu: Tensor = torch.get_rng_state()
            self._gpu: Tensor | None = torch.cuda.get_rng_state(self.cuda) if self.cuda is not None else None

    @contextmanager
    def active(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        caller_cpu = torch.get_rng_state()
        caller_gpu = torch.cuda.get_rng_state(self.cuda) if self.cuda is not None else None
        caller_deterministic = torch.are_deterministic_algorithms_enabled()
        caller_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        torch.set_rng_state(self._cpu)
        if self.cuda is not None and self._gpu is not None:
            torch.cuda.set_rng_state(self._gpu, self.cuda)
        if self.deterministic:
            torch.use_deterministic_algorithms(True)
        self._depth = 1
        try:
            yield
        finally:
            self._depth = 0
            self._cpu = torch.get_rng_state()
            if self.cuda is not None:
                self._gpu = torch.cuda.get_rng_state(self.cuda)
                torch.cuda.set_rng_state(caller_gpu, self.cuda)  # type: ignore[arg-type]
            torch.set_rng_state(caller_cpu)
            torch.use_deterministic_algorithms(caller_deterministic, warn_only=caller_warn_only)

    def rng_state(self) -> dict[str, Tensor]:
        """The run's generators now (what a checkpoint keeps): ``{"torch": ..., "cuda": ...}``."""
        active = self._depth > 0
        state = {"torch": torch.get_rng_state() if active else self._cpu.clone()}
        if self.cuda is not None:
            gpu = torch.cuda.get_rng_state(self.cuda) if active else self._gpu
            assert gpu is not None
            state["cuda"] = gpu.clone()
        return state

    def load_rng_state(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (as :meth:`rng_state` returned it, e.g. from a checkpoint)."""
        cpu = state["torch"].to("cpu")
        gpu = state["cuda"].to("cpu") if "cuda" in state and self.cuda is not None else None
        if self._depth:
            torch.set_rng_state(cpu)
            if gpu is not None:
                torch.cuda.set_rng_state(gpu, self.cuda)  # type: ignore[arg-type]
        else:
            self._cpu = cpu
            if gpu is not None:
                self._gpu = gpu
