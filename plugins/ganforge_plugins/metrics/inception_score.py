"""Inception Score: Salimans et al. 2016, "Improved Techniques for Training GANs" (arXiv:1606.03498),
section 4:

    IS = exp(E_x KL(p(y|x) || p(y))),   p(y) = E_x p(y|x),

computed on each of ``splits`` consecutive equal parts of the samples (10 in the paper), reporting the
mean and standard deviation over the parts. It is 1 when every sample gets the same prediction and
``K`` when the samples are confidently classified into ``K`` equally frequent classes.

It is computed here directly on class probabilities (torch-fidelity and torchmetrics take logits), in
float64 with ``xlogy`` so that a confident prediction (exact zeros) gives ``0 log 0 = 0``, not NaN.
"""

from __future__ import annotations

import attrs
import torch
from attrs import validators as v
from ganforge import GanforgeError, hookimpl
from torch import Tensor


def inception_score(probabilities: Tensor) -> float:
    """``exp(mean_x KL(p(y|x) || mean_x p(y|x)))`` of ``[N, K]`` class probabilities."""
    p = probabilities.to(torch.float64)
    marginal = p.mean(dim=0, keepdim=True)
    kl = (torch.special.xlogy(p, p) - torch.special.xlogy(p, marginal)).sum(dim=1)  # [N]
    return float(kl.mean().exp())


def check_probabilities(p: Tensor, *, min_samples: int) -> None:
    if p.dim() != 2:
        raise GanforgeError(f"is: expected class probabilities [N, K], got shape {list(p.shape)}")
    if p.shape[0] < min_samples:
        raise GanforgeError(f"is: needs at least {min_samples} samples (one per split), got {p.shape[0]}")
    if not torch.isfinite(p).all() or bool((p < 0).any()):
        raise GanforgeError("is: probabilities must be finite and non-negative")
    worst = float((p.to(torch.float64).sum(dim=1) - 1).abs().max())
    if worst > 1e-3:
        raise GanforgeError(f"is: each row must be a distribution summing to 1 (off by up to {worst:.3g}); "
                            "pass probabilities, not logits")


@attrs.frozen(kw_only=True)
class ISConfig:
    splits: int = attrs.field(default=10, validator=v.ge(1))


class InceptionScore:
    """Inception Score (Salimans et al. 2016): exp E KL(p(y|x) || p(y)), mean and std over splits."""

    needs = "probabilities"

    def __init__(self, config: ISConfig) -> None:
        self.config = config
        self.min_samples = config.splits

    def compute(self, real: Tensor | None, fake: Tensor) -> dict[str, float]:
        check_probabilities(fake, min_samples=self.min_samples)
        n, k = fake.shape[0], self.config.splits
        scores = torch.tensor([inception_score(fake[i * n // k : (i + 1) * n // k]) for i in range(k)],
                              dtype=torch.float64)
        return {"is_mean": float(scores.mean()), "is_std": float(scores.std(unbiased=False))}


@hookimpl
def ganforge_register_metrics(register):
    register("is", InceptionScore, ISConfig)
