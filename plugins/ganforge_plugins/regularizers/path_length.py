"""Path length regularisation: Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN" (arXiv:1912.04958), section 3.2, eq. 4.

A fixed-size step in W should change the image by a fixed amount, whatever the direction and
wherever in W it is taken. With ``J_w`` the Jacobian of the synthesis network at ``w`` and ``y`` an
image of normally distributed pixels,

    L_pl = E_{w, y} [ (||J_w^T y||_2 - a)^2 ],

where ``a`` is a moving average of the lengths ``||J_w^T y||_2`` (decay 0.01), so the penalty asks
for one length without fixing which. ``J_w^T y`` is one backward pass: the gradient of
``sum(g(w) * y)`` with respect to ``w``. As in the paper's code, ``y`` is scaled by
``1 / sqrt(H W)`` so that the lengths do not grow with the resolution, the gradient is taken with
respect to every style of W+ (its squared norm averaged over the styles), the penalty runs on a
batch ``shrink`` times smaller than the generator's (2), lazily every ``every`` generator updates
(4 there: the engine multiplies it by ``every``) with weight 2. The paper finds a smoother generator,
better PPL and easier inversion; it leaves the networks unchanged.

The moving average is the penalty's state: it is saved with the checkpoints, so a resumed run
continues it. In a distributed run each process contributes its lengths to one average
(an all-reduce of one number per evaluation), as one process with the whole batch would.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import attrs
import torch
from attrs import validators as v
from ganforge import ConfigError, PenaltyContext, hookimpl
from torch import Tensor, nn


@attrs.frozen(kw_only=True)
class PathLengthConfig:
    weight: float = attrs.field(default=2.0, validator=v.ge(0.0))  # pl_weight, StyleGAN2's configs
    decay: float = attrs.field(default=0.01, validator=[v.gt(0.0), v.le(1.0)])  # of the moving average a
    shrink: int = attrs.field(default=2, validator=v.ge(1))  # pl_batch_shrink: batch / shrink samples
    every: int = attrs.field(default=4, validator=v.ge(1))  # lazy interval in generator updates


def path_lengths(generator: nn.Module, ws: Tensor, noise: Tensor) -> Tensor:
    """``[N]``: ``||J_w^T y||_2`` per sample, with ``y = noise / sqrt(H W)``, the squared gradient
    norm averaged over the ``num_ws`` styles of ``ws: [N, num_ws, w_dim]``; the graph is kept so
    that a penalty on the lengths reaches the generator's parameters."""
    with torch.autocast(device_type=ws.device.type, enabled=False):
        images = generator.synthesis(ws)
        y = noise.to(images.dtype) / math.sqrt(images.shape[2] * images.shape[3])
        (grad,) = torch.autograd.grad((images * y).sum(), ws, create_graph=True)
    lengths: Tensor = grad.square().sum(dim=2).mean(dim=1).sqrt()
    return lengths


class PathLengthPenalty:
    """``weight * E[(||J_w^T y|| - a)^2]`` on the generator (Karras et al. 2020, eq. 4)."""

    target: Literal["generator"] = "generator"
    needs_labels = False

    def __init__(self, config: PathLengthConfig) -> None:
        self.config = config
        self.every = config.every
        self.mean = torch.zeros(())  # a, the moving average of the lengths (0 before the first update)

    def penalty(self, ctx: PenaltyContext) -> Tensor:
        g = ctx.generator
        if not all(hasattr(g, name) for name in ("mapping", "synthesis", "num_ws")):
            raise ConfigError(f"regularizers: 'path-length' needs a generator with a mapping network into W and a "
                              f"synthesis network of W+ (mapping, synthesis, num_ws), such as 'stylegan'; got "
                              f"{type(g).__name__}")
        n = max(1, ctx.latents.shape[0] // self.config.shrink)
        labels = ctx.fake_labels[:n] if ctx.fake_labels is not None and getattr(g, "num_classes", None) else None
        w = g.mapping(ctx.latents[:n], labels)
        ws = w[:, None].repeat(1, g.num_ws, 1)
        images_shape = (n, *ctx.fake.shape[1:])
        lengths = path_lengths(g, ws, ctx.normal(images_shape, dtype=torch.promote_types(ws.dtype, torch.float32)))
        batch_mean = lengths.detach().mean()
        if ctx.world_size > 1:  # one average over every process's lengths
            torch.distributed.all_reduce(batch_mean)
            batch_mean = batch_mean / ctx.world_size
        # a non-finite batch (that the nonfinite policy may skip) must not poison the average for good;
        # torch.where keeps it without reading the value back to the host
        mean = self.mean.to(batch_mean)
        self.mean = torch.where(torch.isfinite(batch_mean), mean.lerp(batch_mean, self.config.decay), mean)
        return self.config.weight * (lengths - self.mean).square().mean()

    def state_dict(self) -> dict[str, Tensor]:
        return {"mean": self.mean.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = state["mean"].detach().clone()


@hookimpl
def ganforge_register_regularizers(register):
    register("path-length", PathLengthPenalty, PathLengthConfig)
