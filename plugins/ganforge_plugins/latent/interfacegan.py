"""InterFaceGAN: Shen, Yang, Tang & Zhou 2020, "InterFaceGAN: Interpreting the Disentangled Face
Representation Learned by GANs" (arXiv:2005.09635; CVPR 2020 version arXiv:1907.10786).

Section 2.1-2.3: for a binary attribute the latent space is split by a hyperplane with unit normal
``n``; an edit is ``z_edit = z + alpha n`` (eq. 3 of the CVPR paper). The direction is found by
sampling ``N`` latents, generating and scoring them, keeping the ``n`` highest and ``n`` lowest
scored samples as positives and negatives and fitting a linear SVM; ``n`` is its normalised weight
vector (pointing towards higher scores). Conditional manipulation (section 2.3, eq. 4): to change
attribute 1 without attribute 2, edit along the projection ``n1 - (n1^T n2) n2`` (normalised); with
several conditions, along ``n1`` minus its projection on their orthonormalised span.

The projection removes what the condition's *boundary* shares with the attribute's, but when the
attribute is confounded with a class (thick strokes are mostly 0s and 8s, thin ones 1s) the SVM's
extremes are chosen by class as much as by the attribute. ``balance_by`` names a classifier scorer
whose argmax groups the samples; each sample's attribute is then ranked within its group (a percentile)
before the extremes are taken, so that positives and negatives come from every class in proportion
and the SVM is fitted on the attribute's variation inside a class. This is the sampling-side remedy
for the correlated attributes of section 2.3 (not in the paper); it composes with ``condition``.

The paper samples 500K latents and keeps 10K each side (2%); the defaults here, 4000 and 400 (10%),
suit small generators on a CPU. ``space`` is ``z`` (every generator), ``w`` or ``w+`` (W+ directions
are fitted on ``w`` repeated over the layers, i.e. on W, and broadcast). In W+, ``layers`` confines the
edit to a style range (``coarse``, ``middle``, ``fine`` or ``"start:stop"``), as GANSpace's ``E(v_i, j-k)``
and StyleGAN's style mixing do: an attribute the middle styles carry (stroke thickness) then changes
while the coarse styles, which set the digit's shape, stay as they were. ``alpha`` is the distance moved
by each edited style.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch
from attrs import validators as v
from ganforge import AttributeScorer, ConfigError, hookimpl
from torch import Tensor

from ganforge_plugins.latent.editing import (
    alpha_like,
    build_scorer,
    check_latents,
    load_direction,
    parse_attribute,
    save_direction,
    score_latents,
)
from ganforge_plugins.latent.spaces import SPACES, check_space, latent_shape, render_batched, sample_latents


@attrs.frozen(kw_only=True)
class InterFaceGANConfig:
    space: str = attrs.field(default="z", validator=v.in_(SPACES))  # latent space to edit
    attribute: str = "ink"  # "scorer" or "scorer:attribute": the attribute the direction changes
    condition: tuple[str, ...] = attrs.field(default=(), converter=tuple)  # attributes kept fixed (section 2.3)
    balance_by: str = ""  # a classifier scorer ("mnist-digit"): rank the attribute within its argmax class
    layers: str = "all"  # W+ only: the style range edited ("coarse", "middle", "fine", "start:stop")
    num_samples: int = attrs.field(default=4000, validator=v.ge(4))  # paper: 500K
    num_keep: int = attrs.field(default=400, validator=v.ge(1))  # n highest and n lowest; paper: 10K
    svm_c: float = attrs.field(default=1.0, validator=v.gt(0.0))  # LinearSVC's C
    batch_size: int = attrs.field(default=256, validator=v.ge(1))
    direction: str = ""  # a saved direction file to load instead of fitting

    def __attrs_post_init__(self) -> None:
        if self.layers != "all" and self.space != "w+":
            raise ValueError(f"'layers' must be 'all' with space = {self.space!r}: a style range ({self.layers!r}) "
                             "confines the edit to W+ and needs space = 'w+'")
        if 2 * self.num_keep > self.num_samples:
            raise ValueError(f"'num_keep' must be at most num_samples / 2 = {self.num_samples // 2} "
                             f"(got {self.num_keep})")


# -- the maths ------------------------------------------------------------------------------------


def extremes(scores: Tensor, num_keep: int) -> tuple[Tensor, Tensor]:
    """Indices of the ``num_keep`` lowest and ``num_keep`` highest scores."""
    order = scores.argsort()
    return order[:num_keep], order[-num_keep:]


def svm_direction(latents: Tensor, scores: Tensor, num_keep: int, *, c: float = 1.0, seed: int = 0) -> Tensor:
    """Unit normal of a linear SVM separating the ``num_keep`` highest from the ``num_keep`` lowest scored
    latents (``latents``: ``[N, D]``), pointing towards higher scores: ``[D]``."""
    from sklearn.svm import LinearSVC

    low, high = extremes(scores, num_keep)
    x = torch.cat([latents[low], latents[high]]).double().cpu().numpy()
    y = torch.cat([torch.zeros(num_keep), torch.ones(num_keep)]).numpy()
    svm = LinearSVC(C=c, dual="auto", max_iter=20000, random_state=seed).fit(x, y)
    normal = torch.from_numpy(svm.coef_[0]).float()
    norm = normal.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise ConfigError("attribute: the SVM found no separating direction (scores are constant?)")
    return normal / norm


def rank_within(scores: Tensor, groups: Tensor) -> Tensor:
    """``[N]`` percentile in ``(0, 1)`` of each score among the scores of its group (``groups``: ``[N]`` ints)."""
    out = torch.empty_like(scores, dtype=torch.float64)
    for g in groups.unique():
        members = (groups == g).nonzero().squeeze(1)
        ranks = scores[members].argsort().argsort().double()
        out[members] = (ranks + 0.5) / len(members)
    return out


def project_out(direction: Tensor, others: list[Tensor] | Tensor, eps: float = 1e-8) -> Tensor:
    """``direction`` minus its projection on the span of ``others`` (orthonormalised by QR), renormalised
    (InterFaceGAN section 2.3, eq. 4 for one condition: ``n1 - (n1^T n2) n2``)."""
    d = direction.reshape(-1).double()
    if isinstance(others, Tensor):
        others = [others] if others.ndim == 1 else list(others)
    if not others:
        return direction
    basis, _ = torch.linalg.qr(torch.stack([o.reshape(-1).double() for o in others], dim=1))  # [D, k]
    d = d - basis @ (basis.T @ d)
    norm = d.norm()
    if norm < eps:
        raise ConfigError("condition: the attribute direction lies in the span of the conditions; nothing is left")
    return (d / norm).to(direction.dtype).reshape(direction.shape)


# -- the editor -----------------------------------------------------------------------------------


class InterFaceGAN:
    """Edits along the SVM normal of an attribute: ``latents + alpha n`` (``n`` a unit vector)."""

    def __init__(self, config: InterFaceGANConfig, *, scorers: dict[str, AttributeScorer] | None = None) -> None:
        self.config = config
        self.space = config.space
        self.scorers = dict(scorers or {})  # name -> scorer: overrides the registered ones (tests, user code)
        self.direction: Tensor | None = None  # [*space.shape]
        self.unconditioned: Tensor | None = None
        self.conditions: dict[str, Tensor] = {}
        self.shape: tuple[int, ...] | None = None
        self.layer_mask: Tensor | None = None  # [num_ws] for an edit confined to a style range

    def _scorer(self, name: str, field: str) -> AttributeScorer:
        if name not in self.scorers:
            self.scorers[name] = build_scorer(name, field=field)
        return self.scorers[name]

    def fit(self, generator: Any, *, device: torch.device, generator_rng: torch.Generator) -> None:
        cfg = self.config
        check_space(generator, cfg.space)
        self.shape = latent_shape(generator, cfg.space)
        if cfg.layers != "all":
            from ganforge_plugins.latent.style import layer_mask

            self.layer_mask = layer_mask(generator, cfg.layers)
        if cfg.direction:
            self.load(cfg.direction, generator)
            return
        fit_space = "w" if cfg.space == "w+" else cfg.space
        latents = sample_latents(generator, cfg.num_samples, fit_space, generator_rng=generator_rng, device=device)
        flat = latents.reshape(len(latents), -1).float().cpu()

        groups = self._groups(generator, latents, fit_space) if cfg.balance_by else None

        def direction_of(spec: str, field: str) -> Tensor:
            name, attribute = parse_attribute(spec, field=field)
            scores = score_latents(generator, latents, fit_space, self._scorer(name, field), attribute,
                                   batch_size=cfg.batch_size, field=field)
            if groups is not None and field == "attribute":
                scores = rank_within(scores, groups)
            return svm_direction(flat, scores, cfg.num_keep, c=cfg.svm_c)

        main = direction_of(cfg.attribute, "attribute")
        self.conditions = {spec: direction_of(spec, "condition") for spec in cfg.condition}
        self.unconditioned = main
        direction = project_out(main, list(self.conditions.values()))
        self.direction = self._broadcast(direction)

    @torch.no_grad()
    def _groups(self, generator: Any, latents: Tensor, space: str) -> Tensor:
        """``[N]`` the ``balance_by`` scorer's argmax class of each sample."""
        scorer = self._scorer(self.config.balance_by, "balance_by")
        if len(scorer.attributes) < 2:
            raise ConfigError(f"balance_by: {self.config.balance_by!r} scores one attribute "
                              f"({list(scorer.attributes)}); expected a classifier with several classes")
        images = render_batched(generator, latents, space, self.config.batch_size)
        return scorer.score(images).argmax(1).cpu()

    def _broadcast(self, direction: Tensor) -> Tensor:
        assert self.shape is not None
        if self.space == "w+":
            ws = direction.reshape(1, -1).expand(self.shape[0], -1).clone()
            return ws if self.layer_mask is None else ws * self.layer_mask[:, None].to(ws)
        return direction.reshape(self.shape)

    def edit(self, latents: Tensor, alpha: Tensor | float) -> Tensor:
        check_latents(latents, self.shape if self.direction is not None else None, self.space, "interfacegan")
        assert self.direction is not None
        return latents + alpha_like(alpha, latents) * self.direction.to(latents)

    def save(self, path: str | Path, generator: Any) -> Path:
        if self.direction is None:
            raise ConfigError("interfacegan: nothing to save; call fit() first")
        return save_direction(path, self.direction, generator=generator, space=self.space, editor="interfacegan",
                              meta={"attribute": self.config.attribute, "condition": list(self.config.condition),
                                    "balance_by": self.config.balance_by, "layers": self.config.layers})

    def load(self, path: str | Path, generator: Any) -> None:
        tensors, _ = load_direction(path, generator=generator, space=self.space)
        self.shape = latent_shape(generator, self.space)
        self.direction = tensors["direction"]


@hookimpl
def ganforge_register_editors(register):
    register("interfacegan", InterFaceGAN, InterFaceGANConfig)
