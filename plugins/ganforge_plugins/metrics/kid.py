"""Kernel Inception Distance: Bińkowski, Sutherland, Arbel & Gretton 2018, "Demystifying MMD GANs"
(arXiv:1801.01401), section 4 and appendix D.

KID is the squared maximum mean discrepancy between the real and generated feature distributions
under the cubic polynomial kernel ``k(x, y) = (gamma x.y + coef0)^degree`` with ``gamma = 1/D``,
``coef0 = 1``, ``degree = 3``, estimated without bias (the U-statistic over distinct pairs within
each set, eq. 2 of Gretton et al. 2012):

    MMD^2_u = 1/(m(m-1)) sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] - 2/m^2 sum_{i, j} k(x_i, y_j),

averaged over ``subsets`` random subsets of ``subset_size`` samples from each set; its standard
deviation over the subsets is reported too. Unbiased means that for two samples of one distribution
its expectation is 0: a single estimate can be slightly negative.

The estimator is torch-fidelity's (``kid_features_to_metric``), run in float64 on our features.
"""

from __future__ import annotations

import attrs
import torch
from attrs import validators as v
from ganforge import hookimpl
from torch import Tensor

from ganforge_plugins.metrics.fid import check_features


def kernel_inception_distance(real: Tensor, fake: Tensor, *, subsets: int, subset_size: int, degree: int,
                              gamma: float | None, coef0: float, seed: int) -> tuple[float, float]:
    """Mean and standard deviation over subsets of the unbiased polynomial-kernel MMD^2."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    out = kid_features_to_metric(
        fake.detach().to("cpu", torch.float64), real.detach().to("cpu", torch.float64),
        kid_subsets=subsets, kid_subset_size=subset_size, kid_kernel="poly", kid_kernel_poly_degree=degree,
        kid_kernel_poly_gamma=gamma, kid_kernel_poly_coef0=coef0, rng_seed=seed, verbose=False,
    )
    return out["kernel_inception_distance_mean"], out["kernel_inception_distance_std"]


@attrs.frozen(kw_only=True)
class KIDConfig:
    subsets: int = attrs.field(default=100, validator=v.ge(1))  # the paper's 100 subsets ...
    subset_size: int = attrs.field(default=1000, validator=v.ge(2))  # ... of 1000 samples each
    degree: int = attrs.field(default=3, validator=v.ge(1))
    gamma: float | None = attrs.field(default=None, validator=v.optional(v.gt(0.0)))  # None: 1 / D
    coef0: float = 1.0
    seed: int = attrs.field(default=0, validator=v.ge(0))  # draws the subsets


class KernelInceptionDistance:
    """KID (Bińkowski et al. 2018): unbiased polynomial-kernel MMD^2 between feature sets, over subsets."""

    needs = "features"

    def __init__(self, config: KIDConfig) -> None:
        self.config = config
        self.min_samples = config.subset_size

    def compute(self, real: Tensor | None, fake: Tensor) -> dict[str, float]:
        real = check_features(real, fake, metric="kid", min_samples=self.min_samples)
        c = self.config
        mean, std = kernel_inception_distance(real, fake, subsets=c.subsets, subset_size=c.subset_size,
                                              degree=c.degree, gamma=c.gamma, coef0=c.coef0, seed=c.seed)
        return {"kid_mean": mean, "kid_std": std}


@hookimpl
def ganforge_register_metrics(register):
    register("kid", KernelInceptionDistance, KIDConfig)
