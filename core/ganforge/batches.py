"""Minibatches drawn from in-memory tensors in a reproducible order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .errors import ConfigError


class BatchStream:
    """Endless shuffled minibatches of named tensors of equal length, reproducible from its state.

    Each epoch is a permutation drawn from ``rng``; a batch never spans two epochs (the tail that
    does not fill a batch is dropped, as ``DataLoader(drop_last=True)``). One index selects every
    tensor, so an image travels with its own label. The state is the RNG, the current permutation
    and the position in it.
    """

    def __init__(self, tensors: Mapping[str, Tensor], batch_size: int, device: torch.device, rng: torch.Generator,
                 *, name: str = "data") -> None:
        lengths = {key: len(t) for key, t in tensors.items()}
        if not lengths:
            raise ConfigError(f"data stream {name!r} holds no tensors")
        n = next(iter(lengths.values()))
        if any(length != n for length in lengths.values()):
            raise ConfigError(f"data stream {name!r}: tensors of different lengths {lengths}")
        if batch_size > n:
            raise ConfigError(f"train.batch_size: {batch_size} is larger than the dataset ({n} samples)")
        self.tensors = {key: t.to(device) for key, t in tensors.items()}
        self.device = device
        self.batch_size = batch_size
        self.rng = rng
        self.order = torch.randperm(n, generator=rng)
        self.position = 0

    def next(self) -> dict[str, Tensor]:
        if self.position + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.order), generator=self.rng)
            self.position = 0
        index = self.order[self.position : self.position + self.batch_size].to(self.device, non_blocking=True)
        self.position += self.batch_size
        return {key: t[index] for key, t in self.tensors.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.get_state(), "order": self.order, "position": self.position}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.set_state(state["rng"])
        self.order = state["order"]
        self.position = int(state["position"])
