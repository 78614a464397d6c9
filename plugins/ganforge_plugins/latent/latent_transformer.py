"""Latent transformer: Yao, Newson, Gousseau & Hellier 2021, "A Latent Transformer for Disentangled Face
Editing in Images and Videos" (ICCV 2021, arXiv:2106.11895).

Section 3: an attribute is edited by a learned, latent-dependent move ``T(w, alpha) = w + alpha f(w)``
(eq. 1) with ``f`` a small MLP, one per attribute. ``f`` is trained through a frozen *latent
classifier* ``C`` that predicts every attribute from the latent code (the paper trains it on latents
of labelled images); with ``p = sigmoid(C_t(w))`` the target attribute's probability (section 3.2):

- ``L_cls = BCE(C_t(T(w, alpha)), y_t)`` with the target label ``y_t = round(clip(p + alpha, 0, 1))``:
  ``alpha = 1`` turns every sample positive, ``alpha = -1`` negative (``alpha`` drawn from ``U[-1, 1]``;
  positives and negatives weighted to balance, as the authors' code does);
- ``L_attr = || C_o(T(w, alpha)) - C_o(w) ||^2``: the other attributes' predictions must not move;
- ``L_rec = || T(w, alpha) - w ||^2``: the edit stays small (both as means over the elements),

``L = L_cls + lambda_attr L_attr + lambda_rec L_rec`` with ``lambda_attr = 1`` and ``lambda_rec = 10``.

Here the labels come from the registered attribute scorers: ``num_samples`` latents are sampled,
rendered and scored; the target attribute is binarised at its median score (``threshold``: a sample is
"positive" above it) and the ``preserve`` attributes (``"scorer"`` keeps every column of a scorer,
``"scorer:attribute"`` one) are standardised and regressed. ``C`` is an MLP trained on 90% of these
pairs (BCE for the target, MSE for the others), keeping the weights with the lowest loss on the other
10% (``classifier_accuracy`` is its accuracy there), and then frozen. ``f`` is trained against it on
fresh prior draws every step (``C`` needs no image, so ``f`` sees far more latents than were scored).
How well ``C`` generalises bounds how many samples flip: on a DCGAN trained on digits, held-out
accuracy 0.76 with 2000 scored samples gave 79% flips at ``alpha = 1``, 0.78 with 8000 gave 82%.
``space`` is ``z``, ``w`` or ``w+`` (W+ latents are flattened; the paper edits StyleGAN2's W+).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import AttributeScorer, ConfigError, hookimpl
from torch import Tensor, nn

from ganforge_plugins.latent.editing import alpha_like, build_scorer, check_latents, column, parse_attribute
from ganforge_plugins.latent.spaces import (
    SPACES,
    check_space,
    latent_shape,
    load_latent_file,
    render_batched,
    sample_latents,
    save_latent_file,
)

KIND = "latent-transformer"


@attrs.frozen(kw_only=True)
class LatentTransformerConfig:
    space: str = attrs.field(default="w", validator=v.in_(SPACES))  # paper: StyleGAN2's W+
    attribute: str = "ink"  # "scorer" or "scorer:attribute": the attribute T flips
    preserve: tuple[str, ...] = attrs.field(default=("slant", "mnist-digit"), converter=tuple)  # L_attr's attributes
    num_samples: int = attrs.field(default=4000, validator=v.ge(16))  # scored latents for C
    hidden: int = attrs.field(default=512, validator=v.ge(1))  # width of f
    layers: int = attrs.field(default=2, validator=v.ge(1))  # linear layers of f
    classifier_hidden: int = attrs.field(default=256, validator=v.ge(1))  # width of the latent classifier C
    classifier_layers: int = attrs.field(default=3, validator=v.ge(1))  # linear layers of C (1: logistic)
    classifier_steps: int = attrs.field(default=1000, validator=v.ge(1))
    steps: int = attrs.field(default=2000, validator=v.ge(1))  # training steps of f
    batch_size: int = attrs.field(default=256, validator=v.ge(1))
    lr: float = attrs.field(default=1e-3, validator=v.gt(0.0))  # Adam
    lambda_attr: float = attrs.field(default=1.0, validator=v.ge(0.0))  # paper: 1
    lambda_rec: float = attrs.field(default=10.0, validator=v.ge(0.0))  # paper: 10
    direction: str = ""  # a saved latent-transformer file to load instead of training


# -- the maths ------------------------------------------------------------------------------------


def mlp(d_in: int, hidden: int, d_out: int, layers: int) -> nn.Sequential:
    """``layers`` linear layers ``d_in -> hidden -> ... -> d_out`` with leaky ReLUs between them."""
    dims = [d_in] + [hidden] * (layers - 1) + [d_out]
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        mods.append(nn.Linear(a, b))
        if i < layers - 1:
            mods.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*mods)


def transform(f: nn.Module, latents: Tensor, alpha: Tensor | float) -> Tensor:
    """``T(w, alpha) = w + alpha f(w)`` (eq. 1) on latents ``[N, *S]`` (flattened for ``f``)."""
    step: Tensor = f(latents.reshape(len(latents), -1)).reshape(latents.shape)
    return latents + alpha_like(alpha, latents) * step


def flip_targets(p: Tensor, alpha: Tensor) -> Tensor:
    """Target labels ``round(clip(p + alpha, 0, 1))`` of the edited latents."""
    return (p + alpha).clamp(0.0, 1.0).round()


def balanced_bce(logits: Tensor, targets: Tensor) -> Tensor:
    """Binary cross-entropy with positives and negatives weighted ``N / (2 n_class)`` (equal total weight)."""
    n = targets.numel()
    pos = targets.sum()
    weight = torch.where(targets > 0.5, n / (2 * pos.clamp_min(1)), n / (2 * (n - pos).clamp_min(1)))
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weight)


def transformer_loss(target_logit: Tensor, targets: Tensor, others_edit: Tensor, others: Tensor, edited: Tensor,
                     latents: Tensor, *, lambda_attr: float, lambda_rec: float) -> tuple[Tensor, dict[str, float]]:
    """``L_cls + lambda_attr L_attr + lambda_rec L_rec`` and its parts (section 3.2)."""
    cls = balanced_bce(target_logit, targets)
    attr = F.mse_loss(others_edit, others) if others.numel() else target_logit.new_zeros(())
    rec = F.mse_loss(edited, latents)
    total = cls + lambda_attr * attr + lambda_rec * rec
    parts = {"cls": cls, "attr": attr, "rec": rec, "total": total}
    return total, {k: float(t.detach()) for k, t in parts.items()}


# -- the editor -----------------------------------------------------------------------------------


class LatentTransformer:
    """``edit(w, alpha) = w + alpha f(w)``, ``f`` trained to flip one attribute and keep the others."""

    def __init__(self, config: LatentTransformerConfig, *, scorers: dict[str, AttributeScorer] | None = None) -> None:
        self.config = config
        self.space = config.space
        self.scorers = dict(scorers or {})
        self.f: nn.Sequential | None = None
        self.classifier: nn.Sequential | None = None  # C: [D] -> [1 + K] (target logit, standardised others)
        self.threshold: float = math.nan  # target scores above it are positive
        self.others_mean: Tensor | None = None
        self.others_std: Tensor | None = None
        self.shape: tuple[int, ...] | None = None
        self.history: dict[str, list[float]] = {}
        self.classifier_accuracy: float = math.nan

    # scoring
    def _scorer(self, name: str, field: str) -> AttributeScorer:
        if name not in self.scorers:
            self.scorers[name] = build_scorer(name, field=field)
        return self.scorers[name]

    def target_scores(self, images: Tensor) -> Tensor:
        """``[N]`` scores of the target attribute of images."""
        name, attribute = parse_attribute(self.config.attribute, field="attribute")
        scorer = self._scorer(name, "attribute")
        return scorer.score(images)[:, column(scorer, attribute, field="attribute")].float().cpu()

    def preserved_scores(self, images: Tensor) -> Tensor:
        """``[N, K]`` scores of the ``preserve`` attributes (every column of a bare scorer name)."""
        target = parse_attribute(self.config.attribute, field="attribute")
        cols: list[Tensor] = []
        for spec in self.config.preserve:
            name, attribute = parse_attribute(spec, field="preserve")
            scorer = self._scorer(name, "preserve")
            scores = scorer.score(images).float().cpu()
            names = list(scorer.attributes)
            wanted = [column(scorer, attribute, field="preserve")] if attribute else range(len(names))
            target_col = (names.index(target[1]) if target[1] in names else 0) if name == target[0] else -1
            cols += [scores[:, i] for i in wanted if i != target_col]
        return torch.stack(cols, 1) if cols else torch.zeros(len(images), 0)

    def is_positive(self, images: Tensor) -> Tensor:
        """``[N]`` bool: the target attribute's score is above the threshold found at fit time."""
        if math.isnan(self.threshold):
            raise ConfigError("latent-transformer: call fit(generator, ...) or load a file before is_positive()")
        return self.target_scores(images) > self.threshold

    # training
    def fit(self, generator: Any, *, device: torch.device, generator_rng: torch.Generator,
            progress: Any = None) -> None:
        """Train C, then f (``progress``, when given, counts their steps: the studio shows it)."""
        cfg = self.config
        check_space(generator, cfg.space)
        self.shape = latent_shape(generator, cfg.space)
        if cfg.direction:
            self.load(cfg.direction, generator)
            return
        latents = sample_latents(generator, cfg.num_samples, cfg.space, generator_rng=generator_rng, device=device)
        images = render_batched(generator, latents, cfg.space, cfg.batch_size)
        scores = self.target_scores(images)
        others = self.preserved_scores(images)
        del images
        self.threshold = float(scores.median())
        labels = (scores > self.threshold).float()
        if labels.min() == labels.max():
            raise ConfigError(f"attribute: every sampled image scores the same ({float(scores[0]):.4g}) on "
                              f"{cfg.attribute!r}; the generator does not vary this attribute")
        self.others_mean, self.others_std = others.mean(0), others.std(0).clamp_min(1e-6)
        others = (others - self.others_mean) / self.others_std
        flat = latents.reshape(len(latents), -1).float()
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator_rng, device=generator_rng.device))
        rng = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.classifier = mlp(flat.shape[1], cfg.classifier_hidden, 1 + others.shape[1],
                                  cfg.classifier_layers).to(device)
            self.f = mlp(flat.shape[1], cfg.hidden, flat.shape[1], cfg.layers).to(device)
        last = self.f[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)  # T(w, alpha) = w at the start
        nn.init.zeros_(last.bias)
        if progress is not None:
            progress.total = cfg.classifier_steps + cfg.steps
        self._train_classifier(flat, labels.to(device), others.to(device), rng, progress)

        def draw(n: int) -> Tensor:  # fresh prior draws in the edited space (C needs no images)
            fresh = sample_latents(generator, n, cfg.space, generator_rng=rng_device, device=device)
            return fresh.reshape(n, -1).float()

        rng_device = torch.Generator(device).manual_seed(seed + 1)
        self._train_transformer(draw, rng, progress)

    def _train_classifier(self, flat: Tensor, labels: Tensor, others: Tensor, rng: torch.Generator,
                          progress: Any = None) -> None:
        """Fit C on a random 90% of the scored latents; keep the weights with the lowest loss on the other 10%
        (evaluated every 50 steps), whose accuracy on the target label is ``classifier_accuracy``."""
        cfg, c = self.config, self.classifier
        assert c is not None
        order = torch.randperm(len(flat), generator=rng).to(flat.device)
        n_val = max(1, len(flat) // 10)
        val, train = order[:n_val], order[n_val:]

        def loss_of(idx: Tensor) -> Tensor:
            out = c(flat[idx])
            loss = balanced_bce(out[:, 0], labels[idx])
            return loss + F.mse_loss(out[:, 1:], others[idx]) if others.shape[1] else loss

        opt = torch.optim.Adam(c.parameters(), lr=cfg.lr)
        losses: list[float] = []
        best = (math.inf, {k: t.clone() for k, t in c.state_dict().items()})
        for step in range(cfg.classifier_steps):
            idx = train[torch.randint(0, len(train), (min(cfg.batch_size, len(train)),), generator=rng).to(flat.device)]
            loss = loss_of(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress.advance()
            if (step + 1) % 50 == 0 or step + 1 == cfg.classifier_steps:
                with torch.no_grad():
                    held = float(loss_of(val))
                if held < best[0]:
                    best = (held, {k: t.clone() for k, t in c.state_dict().items()})
        c.load_state_dict(best[1])
        c.eval().requires_grad_(False)
        with torch.no_grad():
            self.classifier_accuracy = float(((c(flat[val])[:, 0] > 0).float() == labels[val]).float().mean())
        self.history["classifier"] = losses

    def _train_transformer(self, draw: Any, rng: torch.Generator, progress: Any = None) -> None:
        """Train f on fresh prior latents each step (through the frozen C, so no image is rendered)."""
        cfg, c, f = self.config, self.classifier, self.f
        assert c is not None and f is not None
        opt = torch.optim.Adam(f.parameters(), lr=cfg.lr)
        parts: dict[str, list[float]] = {"cls": [], "attr": [], "rec": [], "total": []}
        for _ in range(cfg.steps):
            w = draw(cfg.batch_size)
            alpha = (torch.rand(len(w), generator=rng) * 2 - 1).to(w)
            with torch.no_grad():
                before = c(w)
            edited = transform(f, w, alpha)
            after = c(edited)
            targets = flip_targets(torch.sigmoid(before[:, 0]), alpha)
            loss, values = transformer_loss(after[:, 0], targets, after[:, 1:], before[:, 1:], edited, w,
                                            lambda_attr=cfg.lambda_attr, lambda_rec=cfg.lambda_rec)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            for k, val in values.items():
                parts[k].append(val)
            if progress is not None:
                progress.advance()
        f.eval().requires_grad_(False)
        self.history.update({f"transformer_{k}": val for k, val in parts.items()})

    # editing
    def edit(self, latents: Tensor, alpha: Tensor | float) -> Tensor:
        check_latents(latents, self.shape if self.f is not None else None, self.space, "latent-transformer")
        assert self.f is not None
        f = self.f.to(latents.device)
        return transform(f, latents.float(), alpha).to(latents.dtype)

    # files
    def save(self, path: str | Path, generator: Any) -> Path:
        if self.f is None or self.classifier is None or self.others_mean is None or self.others_std is None:
            raise ConfigError("latent-transformer: nothing to save; call fit() first")
        tensors = {**{f"f.{k}": t for k, t in self.f.state_dict().items()},
                   **{f"classifier.{k}": t for k, t in self.classifier.state_dict().items()},
                   "threshold": torch.tensor(self.threshold), "others_mean": self.others_mean,
                   "others_std": self.others_std}
        cfg = self.config
        meta = {"editor": KIND, "space": self.space, "attribute": cfg.attribute, "preserve": list(cfg.preserve),
                "hidden": cfg.hidden, "layers": cfg.layers, "classifier_hidden": cfg.classifier_hidden,
                "classifier_layers": cfg.classifier_layers,
                "classifier_accuracy": self.classifier_accuracy}
        return save_latent_file(path, tensors, generator=generator, kind=KIND, meta=meta)

    def load(self, path: str | Path, generator: Any) -> None:
        check_space(generator, self.space)
        tensors, meta = load_latent_file(path, generator=generator, kind=KIND)
        if meta.get("space") != self.space:
            raise ConfigError(f"space: {str(path)!r} holds a latent transformer of {meta.get('space')!r}, "
                              f"the editor edits {self.space!r}")
        self.shape = latent_shape(generator, self.space)
        dim = math.prod(self.shape)
        k = int(tensors["others_mean"].numel())
        self.f = mlp(dim, int(meta["hidden"]), dim, int(meta["layers"]))
        self.classifier = mlp(dim, int(meta["classifier_hidden"]), 1 + k, int(meta.get("classifier_layers", 3)))
        try:
            self.f.load_state_dict({n[2:]: t for n, t in tensors.items() if n.startswith("f.")})
            self.classifier.load_state_dict({n[11:]: t for n, t in tensors.items() if n.startswith("classifier.")})
        except RuntimeError as exc:
            raise ConfigError(f"path: {str(path)!r} does not hold a latent transformer for {self.space!r} "
                              f"latents of shape {self.shape}: {exc}") from None
        self.f.eval().requires_grad_(False)
        self.classifier.eval().requires_grad_(False)
        self.threshold = float(tensors["threshold"])
        self.others_mean, self.others_std = tensors["others_mean"], tensors["others_std"]
        self.classifier_accuracy = float(meta.get("classifier_accuracy", math.nan))


@hookimpl
def ganforge_register_editors(register):
    register("latent-transformer", LatentTransformer, LatentTransformerConfig)
