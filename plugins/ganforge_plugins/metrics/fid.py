"""Fréchet Inception Distance: Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule
Converge to a Local Nash Equilibrium" (arXiv:1706.08500), eq. 6.

Fitting a Gaussian to the features of each set, ``N(mu_r, S_r)`` for the real and ``N(mu_g, S_g)`` for
the generated ones, the FID is their Fréchet (2-Wasserstein) distance squared:

    FID = ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)).

``(S_r S_g)^(1/2)`` is not symmetric, and ``scipy.linalg.sqrtm`` of it goes complex (or fails) when the
covariances are near-singular, as they are with fewer samples than feature dimensions. Its trace is
computed here from symmetric matrices instead: with ``A = S_r^(1/2)`` and ``B = S_g^(1/2)`` (symmetric
PSD roots from ``eigh`` in float64, negative round-off eigenvalues clamped to zero), ``A S_g A`` is
symmetric PSD and similar to ``S_r S_g``, so ``tr (S_r S_g)^(1/2) = tr (A S_g A)^(1/2) =
sum_i sqrt(lambda_i(A S_g A))``, and since ``A S_g A = (B A)^T (B A)`` those square roots are the
singular values of ``B A``, taken directly (``svdvals``) rather than by squaring and rooting again, which
keeps the precision of small eigenvalues (FID of a set with itself is 0 to ~1e-12 relative). The
result is real by construction; a tiny negative total from round-off is clamped to zero.

The library implementations (torch-fidelity's ``fid_statistics_to_metric``, torchmetrics' FID) take
the eigenvalues of the non-symmetric product instead; the tests check agreement with them.
"""

from __future__ import annotations

import attrs
import torch
from ganforge import GanforgeError, hookimpl
from torch import Tensor


def feature_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (``n - 1`` normalisation) of ``[N, D]`` features, float64."""
    x = features.detach().to(torch.float64)
    mu = x.mean(dim=0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - 1)
    return mu, sigma


def psd_sqrt(matrix: Tensor) -> Tensor:
    """Symmetric square root of a symmetric PSD matrix via ``eigh``, negative eigenvalues clamped to 0."""
    sym = (matrix + matrix.T) / 2
    values, vectors = torch.linalg.eigh(sym)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def trace_sqrt_product(sigma1: Tensor, sigma2: Tensor) -> Tensor:
    """``tr (sigma1 sigma2)^(1/2) = sum sqrt(eig(sqrt(sigma1) sigma2 sqrt(sigma1)))``, computed as the sum of
    the singular values of ``sqrt(sigma2) sqrt(sigma1)``; real and non-negative by construction."""
    a = psd_sqrt(sigma1.to(torch.float64))
    b = psd_sqrt(sigma2.to(torch.float64))
    return torch.linalg.svdvals(b @ a).sum()


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """``||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))`` in float64, never negative."""
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    sigma1, sigma2 = sigma1.to(torch.float64), sigma2.to(torch.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.numel(),) * 2:
        raise GanforgeError(
            f"fid: statistics do not match: means {list(mu1.shape)} and {list(mu2.shape)}, "
            f"covariances {list(sigma1.shape)} and {list(sigma2.shape)}"
        )
    diff = mu1 - mu2
    value = diff @ diff + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt_product(sigma1, sigma2)
    return max(float(value), 0.0)


def check_features(real: Tensor | None, fake: Tensor, *, metric: str, min_samples: int) -> Tensor:
    """Both sets ``[N, D]`` with the same ``D``, finite, and at least ``min_samples`` each."""
    if real is None:
        raise GanforgeError(f"{metric}: needs the features of real samples, got none")
    for which, x in (("real", real), ("generated", fake)):
        if x.dim() != 2:
            raise GanforgeError(f"{metric}: {which} features must be [N, D], got shape {list(x.shape)}")
        if x.shape[0] < min_samples:
            raise GanforgeError(
                f"{metric}: needs at least {min_samples} {which} samples, got {x.shape[0]}; draw more samples"
                + (" or lower the metric's subset size" if metric == "kid" else "")
            )
        if not torch.isfinite(x).all():
            raise GanforgeError(f"{metric}: the {which} features contain NaN or infinite values")
    if real.shape[1] != fake.shape[1]:
        raise GanforgeError(
            f"{metric}: real features have {real.shape[1]} dimensions, generated ones {fake.shape[1]}; "
            "both sets must come from the same feature extractor"
        )
    return real


@attrs.frozen(kw_only=True)
class FIDConfig:
    pass


class FrechetInceptionDistance:
    """FID (Heusel et al. 2017, eq. 6): Fréchet distance of Gaussians fitted to real and generated features."""

    needs = "features"
    min_samples = 2  # a covariance needs two samples; FID is biased upwards at small N (compare equal N only)

    def __init__(self, config: FIDConfig) -> None:
        self.config = config

    def compute(self, real: Tensor | None, fake: Tensor) -> dict[str, float]:
        real = check_features(real, fake, metric="fid", min_samples=self.min_samples)
        mu1, sigma1 = feature_statistics(real)
        mu2, sigma2 = feature_statistics(fake)
        return {"fid": frechet_distance(mu1, sigma1, mu2, sigma2)}


@hookimpl
def ganforge_register_metrics(register):
    register("fid", FrechetInceptionDistance, FIDConfig)
