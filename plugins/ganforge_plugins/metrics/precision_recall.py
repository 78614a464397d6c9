"""Improved precision and recall: Kynkäänniemi, Karras, Laine, Lehtinen & Aila 2019, "Improved Precision
and Recall Metric for Assessing Generative Models" (arXiv:1904.06991), eqs. 1-3.

Each set's manifold is approximated by the union of balls around its samples, each ball's radius the
distance to the sample's ``k``-th nearest neighbour in its own set (``k = 3``):

    f(phi, Phi) = 1 if ||phi - phi'|| <= ||phi' - NN_k(phi', Phi)|| for some phi' in Phi, else 0,
    precision = mean over generated phi_g of f(phi_g, Phi_real),
    recall    = mean over real phi_r of f(phi_r, Phi_generated).

Precision is the fraction of generated samples that fall on the real manifold (quality), recall the
fraction of real samples covered by the generated manifold (diversity). The computation is
torch-fidelity's (``calculate_precision_recall_part``), batched so that memory stays bounded.
"""

from __future__ import annotations

import attrs
from attrs import validators as v
from ganforge import hookimpl
from torch import Tensor

from ganforge_plugins.metrics.fid import check_features


def precision_recall(real: Tensor, fake: Tensor, *, k: int, batch_size: int) -> tuple[float, float]:
    """Kynkäänniemi et al.'s precision and recall of ``fake`` against ``real`` features."""
    from torch_fidelity.metric_prc import calculate_precision_recall_part

    precision, recall = calculate_precision_recall_part(
        fake.detach().float().cpu(), real.detach().float().cpu(), neighborhood=k, batch_size=batch_size
    )
    return float(precision), float(recall)


@attrs.frozen(kw_only=True)
class PRConfig:
    k: int = attrs.field(default=3, validator=v.ge(1))  # the paper's k = 3 nearest neighbours
    batch_size: int = attrs.field(default=2000, validator=v.ge(1))  # rows of the distance matrix at once


class PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019): k-NN manifolds of real and generated features."""

    needs = "features"

    def __init__(self, config: PRConfig) -> None:
        self.config = config
        self.min_samples = config.k + 1

    def compute(self, real: Tensor | None, fake: Tensor) -> dict[str, float]:
        real = check_features(real, fake, metric="pr", min_samples=self.min_samples)
        precision, recall = precision_recall(real, fake, k=self.config.k, batch_size=self.config.batch_size)
        return {"precision": precision, "recall": recall}


@hookimpl
def ganforge_register_metrics(register):
    register("pr", PrecisionRecall, PRConfig)
