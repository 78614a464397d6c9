"""The WGAN-GP gradient penalty: Gulrajani et al. 2017, "Improved Training of Wasserstein GANs"
(arXiv:1704.00028), with its one-sided and zero-centred variants.

A differentiable function is 1-Lipschitz iff its gradient norm is at most 1 everywhere, and the
optimal WGAN critic has gradient norm 1 on the lines between coupled real and generated points
(Proposition 1 and its corollary). The penalty is therefore taken on random interpolates (Algorithm 1, eq. 3)

    x_hat = eps x + (1 - eps) x_tilde,   eps ~ U[0, 1] per sample,

and added to the critic's loss with weight ``lambda = 10`` (with ``n_critic = 5`` and
``Adam(1e-4, betas=(0, 0.9))``: configs/wgan-gp.toml). ``variant`` picks the function of
``g = ||grad_x_hat D(x_hat)||_2``:

- ``two-sided`` (Gulrajani et al. 2017, eq. 3): ``lambda E[(g - 1)^2]``;
- ``one-sided`` (Gulrajani et al. 2017, section 4, and the Lipschitz penalty of Petzka et al. 2018,
  arXiv:1709.08894): ``lambda E[max(0, g - 1)^2]``, penalising only norms above 1;
- ``zero-centred`` (0-GP, Thanh-Tung et al. 2019, "Improving Generalization and Stability of
  GANs", arXiv:1902.03984): ``lambda E[g^2]``, pushing the gradient to 0 on the interpolates.

Any discriminator works: a conditional one is scored on the real batch's labels (``ctx.labels``);
for a PatchGAN map the critic value of a sample is the mean of its predictions, the quantity the
losses average, so the penalty constrains the critic as the loss sees it (one prediction per sample
gives ``D(x)`` itself); a PacGAN discriminator's critic value belongs to a pack of samples, and the
norm is taken over the pack's input; a batch-norm critic is differentiated through its batch
statistics (the paper recommends layer norm or none instead). The gradient is taken with
``torch.autograd.grad(create_graph=True)`` in float32 with autocast off, so mixed precision neither
underflows the penalty nor loses its second-order term. The input-gradient helpers here are shared
with the R1/R2 penalties.
"""

from __future__ import annotations

from typing import Literal

import attrs
import torch
from attrs import validators as v
from ganforge import PenaltyContext, hookimpl
from torch import Tensor, nn

VARIANTS = ("two-sided", "one-sided", "zero-centred")


def per_sample_scores(logits: Tensor) -> Tensor:
    """``[N]`` or ``[N, 1, h, w]`` raw outputs -> ``[N]``: each sample's mean prediction."""
    return logits.reshape(logits.shape[0], -1).mean(dim=1)


def _full_precision(network: nn.Module, x: Tensor) -> torch.dtype:
    """float64 for a float64 network (or input, for a network without parameters), else float32."""
    for p in network.parameters():
        if p.is_floating_point():
            return p.dtype if p.dtype == torch.float64 else torch.float32
    return x.dtype if x.dtype == torch.float64 else torch.float32


def input_gradient(discriminator: nn.Module, x: Tensor, labels: Tensor | None = None) -> Tensor:
    """The gradient of each critic value with respect to its input, ``[M, K]``: one row per row of
    the discriminator's output (a sample, or a pack of ``N / M`` consecutive samples for a PacGAN
    discriminator), in float32 (float64 for a float64 network), with the graph kept so that a
    penalty on it can be backpropagated to the discriminator's parameters.

    Autocast is switched off and ``x`` promoted, so the forward pass, the gradient and its second
    order term run in full precision even inside ``torch.autocast``.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.detach().to(_full_precision(discriminator, x)).requires_grad_(True)
        logits = discriminator(x) if labels is None else discriminator(x, labels)  # any nn.Module when unconditional
        scores = per_sample_scores(logits).to(x.dtype)  # [M]
        # critic values are independent (batch norm aside): the gradient of the sum is each one's own
        (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return grad.reshape(scores.shape[0], -1)


def gradient_norms(grad: Tensor) -> Tensor:
    """``[M, K] -> [M]``: the Euclidean norm of each critic value's input gradient."""
    return torch.linalg.vector_norm(grad, dim=1)


def interpolate(real: Tensor, fake: Tensor, *, generator: torch.Generator | None = None,
                eps: Tensor | None = None) -> Tensor:
    """``eps x + (1 - eps) x_tilde`` with one ``eps ~ U[0, 1]`` per sample (``eps: [N]`` if given)."""
    if real.shape != fake.shape:
        raise ValueError(f"wgan-gp: real {tuple(real.shape)} and fake {tuple(fake.shape)} batches differ in shape")
    dtype = torch.promote_types(torch.promote_types(real.dtype, fake.dtype), torch.float32)
    if eps is None:
        eps = torch.rand(real.shape[0], device=real.device, dtype=dtype, generator=generator)
    eps = eps.to(dtype).reshape((real.shape[0],) + (1,) * (real.dim() - 1))
    return torch.lerp(fake.to(dtype), real.to(dtype), eps)  # fake + eps (real - fake)


def gradient_penalty(norms: Tensor, variant: str = "two-sided") -> Tensor:
    """``E[(g - 1)^2]``, ``E[max(0, g - 1)^2]`` or ``E[g^2]`` of the gradient norms ``g``, unweighted."""
    if variant == "two-sided":
        return (norms - 1.0).square().mean()
    if variant == "one-sided":
        return (norms - 1.0).clamp(min=0.0).square().mean()
    if variant == "zero-centred":
        return norms.square().mean()
    raise ValueError(f"wgan-gp: unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}")


@attrs.frozen(kw_only=True)
class WGANGradientPenaltyConfig:
    weight: float = attrs.field(default=10.0, validator=v.ge(0.0))  # lambda = 10 (section 4)
    variant: str = attrs.field(default="two-sided", validator=v.in_(VARIANTS))
    every: int = attrs.field(default=1, validator=v.ge(1))  # lazy interval in critic updates


class WGANGradientPenalty:
    """WGAN-GP: lambda E[(||grad D(x_hat)|| - 1)^2] on random interpolates (Gulrajani et al. 2017)."""

    target: Literal["discriminator"] = "discriminator"
    needs_labels = False

    def __init__(self, config: WGANGradientPenaltyConfig) -> None:
        self.config = config
        self.every = config.every

    def penalty(self, ctx: PenaltyContext) -> Tensor:
        # the run's generator, drawn for the global batch: distributed and resumed runs draw alike
        x_hat = interpolate(ctx.real, ctx.fake, eps=ctx.uniform(ctx.real.shape[0]))
        grad = input_gradient(ctx.discriminator, x_hat, ctx.labels)
        return self.config.weight * gradient_penalty(gradient_norms(grad), self.config.variant)


@hookimpl
def ganforge_register_regularizers(register):
    register("wgan-gp", WGANGradientPenalty, WGANGradientPenaltyConfig)
