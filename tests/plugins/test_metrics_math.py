"""The metrics against their formulas, closed forms, properties and an independent implementation
(torchmetrics) on the same features."""

from __future__ import annotations

import math

import pytest
import torch
from ganforge import GanforgeError
from ganforge_plugins.metrics.fid import (
    FIDConfig,
    FrechetInceptionDistance,
    feature_statistics,
    frechet_distance,
    psd_sqrt,
    trace_sqrt_product,
)
from ganforge_plugins.metrics.inception_score import InceptionScore, ISConfig, inception_score
from ganforge_plugins.metrics.kid import KernelInceptionDistance, KIDConfig
from ganforge_plugins.metrics.precision_recall import PRConfig, PrecisionRecall


def gaussian(n: int, mean: torch.Tensor, cov: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, mean.numel(), generator=g, dtype=torch.float64)
    return mean + z @ torch.linalg.cholesky(cov).T


def exact_moments(n: int, mean: torch.Tensor, cov: torch.Tensor, seed: int) -> torch.Tensor:
    """``n`` samples whose sample mean and (n-1)-covariance are exactly ``mean`` and ``cov``."""
    x = gaussian(n, torch.zeros_like(mean), torch.eye(mean.numel(), dtype=torch.float64), seed)
    x = x - x.mean(0)
    white = x @ torch.linalg.inv(torch.linalg.cholesky(x.T @ x / (n - 1))).T
    return mean + white @ torch.linalg.cholesky(cov).T


def random_cov(d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return scale * (a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64))


# -- FID -----------------------------------------------------------------------------------------


def test_fid_of_a_set_with_itself_is_zero() -> None:
    x = gaussian(3000, torch.linspace(-1, 1, 64, dtype=torch.float64), random_cov(64, 0, 5.0), 1).float()
    fid = FrechetInceptionDistance(FIDConfig()).compute(x, x)["fid"]
    scale = float(feature_statistics(x)[1].trace())
    assert abs(fid) <= 1e-6 * scale
    assert abs(fid) <= 1e-9 * scale  # the SVD route keeps it far below the requirement


def test_fid_equals_the_closed_form_for_diagonal_covariances() -> None:
    d = 10
    mu1, mu2 = torch.zeros(d, dtype=torch.float64), torch.arange(d, dtype=torch.float64) / 10
    s1, s2 = torch.linspace(0.5, 3, d, dtype=torch.float64), torch.linspace(2, 0.1, d, dtype=torch.float64)
    closed = float(((mu1 - mu2) ** 2).sum() + ((s1.sqrt() - s2.sqrt()) ** 2).sum())
    x, y = exact_moments(500, mu1, torch.diag(s1), 0), exact_moments(700, mu2, torch.diag(s2), 1)
    assert FrechetInceptionDistance(FIDConfig()).compute(x, y)["fid"] == pytest.approx(closed, rel=1e-9)


def test_fid_equals_the_closed_form_for_scaled_full_covariances() -> None:
    # sigma2 = c^2 sigma1 commutes with sigma1: tr (sigma1 sigma2)^(1/2) = c tr sigma1, so
    # FID = ||mu1 - mu2||^2 + (1 - c)^2 tr sigma1, for a full (non-diagonal) sigma1.
    d, c = 16, 1.7
    cov = random_cov(d, 3)
    mu1, mu2 = torch.full((d,), 0.3, dtype=torch.float64), torch.full((d,), -0.2, dtype=torch.float64)
    closed = float(((mu1 - mu2) ** 2).sum() + (1 - c) ** 2 * cov.trace())
    assert frechet_distance(mu1, cov, mu2, c * c * cov) == pytest.approx(closed, rel=1e-10)
    x, y = exact_moments(400, mu1, cov, 4), exact_moments(400, mu2, c * c * cov, 5)
    assert FrechetInceptionDistance(FIDConfig()).compute(x, y)["fid"] == pytest.approx(closed, rel=1e-8)


def test_fid_of_samples_converges_to_the_frechet_distance_of_the_distributions() -> None:
    # Non-commuting covariances: the closed form needs the matrix square root; compare with the
    # distribution-level value, computed independently through scipy's sqrtm.
    scipy_linalg = pytest.importorskip("scipy.linalg")
    d = 6
    c1, c2 = random_cov(d, 7), random_cov(d, 8, 2.0)
    mu1, mu2 = torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64) * 0.5
    root = scipy_linalg.sqrtm((c1 @ c2).numpy())
    closed = float(((mu1 - mu2) ** 2).sum() + c1.trace() + c2.trace() - 2 * float(root.real.trace()))
    x, y = gaussian(200_000, mu1, c1, 9), gaussian(200_000, mu2, c2, 10)
    assert FrechetInceptionDistance(FIDConfig()).compute(x, y)["fid"] == pytest.approx(closed, rel=0.02)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(closed, rel=1e-8)


def test_near_singular_covariances_never_give_complex_values() -> None:
    # fewer samples than dimensions: both covariances have rank < D
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 256, generator=g) @ torch.randn(256, 256, generator=g)
    y = torch.randn(60, 256, generator=g) * 3 + 1
    _, s1 = feature_statistics(x)
    _, s2 = feature_statistics(y)
    assert torch.linalg.matrix_rank(s1) < 256 and torch.linalg.matrix_rank(s2) < 256
    eig = torch.linalg.eigvals(s1 @ s2)
    assert (eig.imag.abs() > 0).any() or (eig.real < 0).any()  # what makes the naive route go complex
    for matrix in (s1, s1 - 1e-9 * torch.eye(256, dtype=torch.float64)):  # round-off negative eigenvalues
        root = psd_sqrt(matrix)
        assert not root.is_complex() and torch.isfinite(root).all()
    t = trace_sqrt_product(s1, s2)
    assert not t.is_complex() and math.isfinite(float(t)) and float(t) >= 0
    fid = FrechetInceptionDistance(FIDConfig()).compute(x, y)["fid"]
    assert isinstance(fid, float) and math.isfinite(fid) and fid > 0
    reference = torchmetrics_fid(x, y)
    assert fid == pytest.approx(reference, rel=1e-4)


# -- KID -----------------------------------------------------------------------------------------


def test_kid_is_unbiased_between_samples_of_one_distribution() -> None:
    cov = random_cov(8, 11)
    means, biased = [], []
    for seed in range(40):
        x = gaussian(200, torch.zeros(8, dtype=torch.float64), cov, 2 * seed)
        y = gaussian(200, torch.zeros(8, dtype=torch.float64), cov, 2 * seed + 1)
        kid = KernelInceptionDistance(KIDConfig(subsets=5, subset_size=100, seed=seed))
        means.append(kid.compute(x, y)["kid_mean"])
        biased.append(biased_mmd(x[:100], y[:100]))
    m = torch.tensor(means)
    se = float(m.std() / math.sqrt(len(m)))
    assert abs(float(m.mean())) < 3 * se  # within noise of 0
    assert float(torch.tensor(biased).mean()) > 10 * se  # where the biased V-statistic is clearly not
    assert (m < 0).any()  # single unbiased estimates do go negative


def test_kid_detects_a_shift_and_agrees_with_torchmetrics() -> None:
    tm_kid = pytest.importorskip("torchmetrics.image.kid")
    cov = random_cov(16, 12)
    x = gaussian(600, torch.zeros(16, dtype=torch.float64), cov, 0).float()
    y = gaussian(500, torch.full((16,), 0.3, dtype=torch.float64), cov, 1).float()
    config = KIDConfig(subsets=20, subset_size=200, seed=5)
    ours = KernelInceptionDistance(config).compute(x, y)
    assert ours["kid_mean"] > 10 * ours["kid_std"] / math.sqrt(config.subsets)
    # the same subsets (torch-fidelity's draws), scored by torchmetrics' unbiased polynomial MMD
    import numpy as np

    rng = np.random.RandomState(config.seed)
    values = []
    for _ in range(config.subsets):
        fake = y[torch.from_numpy(rng.choice(len(y), config.subset_size, replace=False))]
        real = x[torch.from_numpy(rng.choice(len(x), config.subset_size, replace=False))]
        values.append(float(tm_kid.poly_mmd(real.double(), fake.double())))
    reference = torch.tensor(values, dtype=torch.float64)
    assert ours["kid_mean"] == pytest.approx(float(reference.mean()), rel=1e-4)
    assert ours["kid_std"] == pytest.approx(float(reference.std(unbiased=False)), rel=1e-4)


def biased_mmd(x: torch.Tensor, y: torch.Tensor) -> float:
    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a @ b.T / a.shape[1] + 1) ** 3

    return float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())


# -- Inception Score -----------------------------------------------------------------------------


def test_is_is_one_for_identical_predictions() -> None:
    p = torch.softmax(torch.randn(1, 10, generator=torch.Generator().manual_seed(0)), dim=1).expand(500, 10)
    out = InceptionScore(ISConfig(splits=5)).compute(None, p)
    assert out["is_mean"] == pytest.approx(1.0, abs=1e-12) and out["is_std"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [2, 7, 10])
def test_is_is_k_for_k_equally_frequent_confident_classes(k: int) -> None:
    p = torch.nn.functional.one_hot(torch.arange(50 * k) % k, num_classes=12).float()  # exact zeros: 0 log 0 = 0
    out = InceptionScore(ISConfig(splits=10)).compute(None, p)
    assert out["is_mean"] == pytest.approx(k, rel=1e-12) and out["is_std"] == pytest.approx(0.0, abs=1e-9)
    assert inception_score(p) == pytest.approx(k, rel=1e-12)


@pytest.mark.filterwarnings("ignore:Metric `InceptionScore` will save all extracted features:UserWarning")
@pytest.mark.filterwarnings("ignore:std:UserWarning")  # torchmetrics' std of one split
def test_is_agrees_with_torchmetrics_and_torch_fidelity() -> None:
    tm_inception = pytest.importorskip("torchmetrics.image.inception")
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = 3 * torch.randn(1000, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = logits.softmax(dim=1)
    ours = InceptionScore(ISConfig(splits=1)).compute(None, p)["is_mean"]
    metric = tm_inception.InceptionScore(feature=Identity(), splits=1)
    metric.update(logits)
    assert ours == pytest.approx(float(metric.compute()[0]), rel=1e-4)
    ours10 = InceptionScore(ISConfig(splits=10)).compute(None, p)
    theirs10 = isc_features_to_metric(logits, splits=10, shuffle=False)
    assert ours10["is_mean"] == pytest.approx(theirs10["inception_score_mean"], rel=1e-4)
    assert ours10["is_std"] == pytest.approx(theirs10["inception_score_std"], rel=1e-4)


def test_is_refuses_logits_and_too_few_samples() -> None:
    with pytest.raises(GanforgeError, match="summing to 1"):
        InceptionScore(ISConfig()).compute(None, torch.rand(100, 10))
    with pytest.raises(GanforgeError, match="at least 10 samples"):
        InceptionScore(ISConfig(splits=10)).compute(None, torch.full((5, 4), 0.25))


# -- precision and recall ------------------------------------------------------------------------


def test_precision_recall_on_a_hand_worked_example() -> None:
    # real points 0, 1, 2, 3 on a line with k = 1: every ball has radius 1, the manifold is [-1, 4]
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    fake = torch.tensor([[0.5], [3.9], [10.0], [11.0], [10.5]])  # two of five on the real manifold
    # fake radii (k = 1): 0.5 -> 3.4, 3.9 -> 6.1, 10 -> 0.5, 11 -> 0.5, 10.5 -> 0.5;
    # real points covered: 0 (by 0.5), 1, 2, 3 (by 0.5 and 3.9) -> recall 1
    out = PrecisionRecall(PRConfig(k=1)).compute(real, fake)
    assert out == {"precision": pytest.approx(2 / 5), "recall": pytest.approx(1.0)}


def test_precision_recall_agree_with_a_direct_implementation_of_the_paper() -> None:
    g = torch.Generator().manual_seed(3)
    real = torch.randn(700, 12, generator=g)
    fake = 0.6 * torch.randn(500, 12, generator=g) + 0.8  # narrower and shifted: precision != recall
    out = PrecisionRecall(PRConfig(k=3, batch_size=128)).compute(real, fake)
    assert out["precision"] == pytest.approx(manifold_fraction(fake, real, 3), abs=2e-3)
    assert out["recall"] == pytest.approx(manifold_fraction(real, fake, 3), abs=2e-3)
    assert 0 < out["recall"] < out["precision"] < 1


def manifold_fraction(queries: torch.Tensor, support: torch.Tensor, k: int) -> float:
    """Kynkäänniemi et al. eq. 1-2 verbatim, in float64: share of queries in the union of k-NN balls."""
    s = support.double()
    radii = torch.cdist(s, s).sort(dim=1).values[:, k]  # column 0 is the point itself
    inside = (torch.cdist(queries.double(), s) <= radii[None, :]).any(dim=1)
    return float(inside.double().mean())


# -- bad input -----------------------------------------------------------------------------------


def test_metrics_refuse_too_few_samples_and_mismatched_features() -> None:
    x = torch.randn(50, 8)
    with pytest.raises(GanforgeError, match=r"kid: needs at least 1000 real samples, got 50"):
        KernelInceptionDistance(KIDConfig()).compute(x, x)
    with pytest.raises(GanforgeError, match="needs at least 2 generated samples, got 1"):
        FrechetInceptionDistance(FIDConfig()).compute(x, x[:1])
    with pytest.raises(GanforgeError, match="real features have 8 dimensions, generated ones 4"):
        FrechetInceptionDistance(FIDConfig()).compute(x, torch.randn(50, 4))
    with pytest.raises(GanforgeError, match="NaN"):
        PrecisionRecall(PRConfig()).compute(x, torch.full((50, 8), float("nan")))
    with pytest.raises(ValueError, match="subset_size"):
        KIDConfig(subset_size=1)


# -- the independent implementation ------------------------------------------------------------


class Identity(torch.nn.Module):
    """A "feature extractor" for torchmetrics that returns its input: the features we pass."""

    def __init__(self, num_features: int = 0) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def torchmetrics_fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    tm_fid = pytest.importorskip("torchmetrics.image.fid")
    metric = tm_fid.FrechetInceptionDistance(feature=Identity(real.shape[1]), reset_real_features=True)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def test_fid_agrees_with_torchmetrics() -> None:
    x = gaussian(2000, torch.zeros(32, dtype=torch.float64), random_cov(32, 20), 0).float()
    y = gaussian(1500, torch.full((32,), 0.2, dtype=torch.float64), random_cov(32, 21, 1.5), 1).float()
    ours = FrechetInceptionDistance(FIDConfig()).compute(x, y)["fid"]
    assert ours == pytest.approx(torchmetrics_fid(x, y), rel=1e-4)
