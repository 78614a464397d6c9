"""The acceptance measurements of the latent-space issue on a trained checkpoint (a StyleGAN on MNIST;
a DCGAN where none is there), with the registered scorers: ``ink`` (stroke thickness), ``slant`` and the
``mnist-digit`` classifier. Edits are made in ``w`` when the generator has a mapping network, else ``z``.

1. InterFaceGAN on ink: over ``seeds`` latents, ``alpha`` in 13 steps over [-3, 3]; mean Spearman rho of
   ink against alpha (target >= 0.9); share of seeds whose digit (classifier argmax) is the same for every
   ``|alpha| <= 1.5`` as at 0 (target >= 0.8); mean |slant(3) - slant(-3)| along the direction
   conditioned on slant over the unconditioned one (target <= 0.5). The same monotonicity and digit
   measures along the ink direction conditioned on the digit are reported beside them: the ten digit
   probabilities' directions projected out (section 2.3), with the SVM's extremes balanced over the
   digits (``balance_by``, ink ranked within each digit) and without (projection only); and, for a W+
   generator, the balanced direction applied to the styles after the coarse range only (``layers``; the
   coarse styles set the digit's shape): the pass/fail where it exists, else the balanced edit in W.
   Each reports the mean ink change from ``alpha = -1.5`` to ``1.5`` beside it, the edit's strength.
2. GANSpace: explained variance of PC1 > PC10 (the last of 10, or of ``w_dim``); mean pixel L2 change
   of an edit of ``3 sigma_1`` along PC1 over a random direction of the same norm (target > 1); for W+
   generators, the coarse range against the finest non-empty one (``middle`` at 32x32: StyleGAN's
   ``fine`` layers start at 64x64), same component: the change of each attribute (in units of its
   standard deviation over samples) and which one changes most. The attributes: ``ink``, ``slant``,
   ``width``, ``height`` (Morpho-MNIST's factors of a digit) and the judge's confidence; each of the
   first three components is matched to the one it moves most monotonically (Spearman rho over alpha),
   with the share of seeds whose digit changes along it (``latent-ganspace-components.png`` draws them).
3. Latent transformer on ink: the share of samples whose ink label (above the median) flips at
   ``alpha = +1`` (negatives) or ``-1`` (positives) (target >= 0.8), and the change of the other
   attributes (slant, digit) per unit of ink change against InterFaceGAN's direction scaled to the same
   mean ink change (target: smaller).
4. Vector arithmetic ``"bold 3" - "thin 3" + "thin 7"``: per trial, means of ``group`` random latents
   of each group (classified 3 or 7 with p > 0.9, ink in the top / bottom quarter of the class); success
   when the result is classified 7 with ink above the median 7's (target >= 0.7 of trials).
5. Inversion: PSNR of optimisation on generated images with known latents (target >= 30 dB); on real
   test images (the checkpoint's own dataset, test split where it has one), reconstruction MSE of hybrid
   (encoder start) against optimisation from ``w_avg`` / ``z = 0`` with the same steps (target: lower),
   and the time of the encoder alone against optimisation (target: >= 20x faster).

Writes ``<out>/latent-mnist.json`` (numbers, targets, pass/fail, settings, device, times) and picture
strips ``<out>/latent-*.png``, ``<out>`` being ``benchmarks/results/latent-<generator>-<dataset>`` unless
given::

    python benchmarks/latent_mnist.py CHECKPOINT [--scale full|medium|cpu|smoke] [--device auto] [--out DIR]

``--scale cpu`` is the quality issue's run on the CPU StyleGAN (``configs/cpu/stylegan-mnist.toml``;
``quality_mnist.py --scale cpu --keep DIR`` keeps it): medium's sizes, a truncation sweep over psi in
{1, 0.7, 0.5, 0} on 10,000 samples (towards ``w_avg``, and towards the nearest of ten k-means centres of W; each psi
with the share of samples already read as the digit of their centre's image), and that
issue's stricter targets (the digit kept in 90% of the edits conditioned on it, the encoder 100x
faster than optimisation); it writes ``benchmarks/results/cpu/latent/``, with a Markdown summary
beside the JSON.

``benchmarks/test_latent_mnist.py`` runs it at ``--scale smoke`` on a tiny checkpoint (marked slow).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import torch

SCALES: dict[str, dict[str, int]] = {
    # seeds: edited latents; samples: latents an editor is fitted on; steps: optimisation / training steps
    "full": {"seeds": 100, "samples": 10000, "keep": 1000, "lt_steps": 2000, "lt_classifier_steps": 1000,
             "trials": 100, "group": 8, "invert_images": 16, "invert_steps": 500, "encoder_steps": 3000,
             "encoder_channels": 32, "batch": 500},
    "medium": {"seeds": 100, "samples": 2000, "keep": 200, "lt_steps": 1000, "lt_classifier_steps": 500,
               "trials": 100, "group": 8, "invert_images": 8, "invert_steps": 300, "encoder_steps": 1000,
               "encoder_channels": 32, "batch": 250},
    # the quality issue's CPU run: medium's sizes, on the CPU StyleGAN of configs/cpu/stylegan-mnist.toml
    "cpu": {"seeds": 100, "samples": 2000, "keep": 200, "lt_steps": 1000, "lt_classifier_steps": 500,
            "trials": 100, "group": 8, "invert_images": 8, "invert_steps": 300, "encoder_steps": 1000,
            "encoder_channels": 32, "batch": 250,
            # the confident share's sampling error at 1,000 samples (1.0 point) is the size of the steps
            # between the psis: there the committed model's multi-modal sweep read 88.7%, 88.6% at psi 1,
            # 0.7, and 89.2%, 90.7% on 10,000 (whose error is 0.3 point)
            "truncation_samples": 10000},
    "smoke": {"seeds": 6, "samples": 200, "keep": 40, "lt_steps": 20, "lt_classifier_steps": 20, "trials": 5,
              "group": 2, "invert_images": 2, "invert_steps": 5, "encoder_steps": 5, "encoder_channels": 4,
              "batch": 100},
}
TARGETS = {"interfacegan_spearman": 0.9, "interfacegan_digit_kept": 0.8, "interfacegan_condition_ratio": 0.5,
           "transformer_flip": 0.8, "arithmetic_success": 0.7, "inversion_generated_psnr": 30.0,
           "encoder_speedup": 20.0, "ganspace_component_rho": 0.9}
# the quality issue's targets where they are stricter: the digit kept in 90% of edits along the direction
# conditioned on the digit, and the encoder 100x faster than optimisation
CPU_TARGETS = {**TARGETS, "interfacegan_digit_kept": 0.9, "encoder_speedup": 100.0}
PSIS = (1.0, 0.7, 0.5, 0.0)
# multi-modal truncation's centres: one per digit class (64 gave the same trend on a probe checkpoint)
TRUNCATION_MODES = 10
# the scorer attributes a GANSpace component may move: Morpho-MNIST's factors of a digit (thickness as ink
# area, slant, width, height) and the judge's confidence in its class
ATTRIBUTES = ("ink", "slant", "width", "height", "digit_p")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman's rho with average ranks for ties (0 when either side is constant)."""
    from scipy.stats import spearmanr

    if float(x.std()) == 0 or float(y.std()) == 0:
        return 0.0
    return float(spearmanr(x.numpy(), y.numpy()).statistic)


class Scores:
    """The attributes every measurement looks at, of images in ``[-1, 1]``."""

    def __init__(self, manager: Any) -> None:
        def build(name: str) -> Any:
            comp = manager.get("scorer", name)
            return comp.factory(comp.config())

        self.ink, self.slant, self.digit = build("ink"), build("slant"), build("mnist-digit")
        self.width, self.height = build("width"), build("height")

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        probs = self.digit.score(x).cpu()
        return {"ink": self.ink.score(x)[:, 0].cpu(), "slant": self.slant.score(x)[:, 0].cpu(),
                "width": self.width.score(x)[:, 0].cpu(), "height": self.height.score(x)[:, 0].cpu(),
                "digit": probs.argmax(1), "digit_p": probs.max(1).values}


def _render(g: Any, latents: torch.Tensor, space: str, batch: int) -> torch.Tensor:
    from ganforge_plugins.latent.spaces import render_batched

    return render_batched(g, latents, space, batch)


def _above_coarse(g: Any) -> str | None:
    """``"start:"``, the W+ styles after the coarse range, when the generator has both (else None)."""
    from ganforge_plugins.latent.spaces import space_names, unwrap

    if "w+" not in space_names(g):
        return None
    module = unwrap(g)
    coarse = dict(getattr(module, "layer_ranges", {})).get("coarse", range(0))
    return f"{coarse.stop}:" if 0 < coarse.stop < module.num_ws else None


def measure_interfacegan(g: Any, space: str, s: dict[str, int], scores: Scores, device: torch.device,
                         out: Path | None, t: dict[str, float] = TARGETS) -> dict[str, Any]:
    from ganforge import save_samples
    from ganforge_plugins.latent.interfacegan import InterFaceGAN, InterFaceGANConfig
    from ganforge_plugins.latent.spaces import lift, sample_latents

    cfg = InterFaceGANConfig(space=space, attribute="ink", num_samples=s["samples"], num_keep=s["keep"],
                             batch_size=s["batch"])
    plain = InterFaceGAN(cfg)
    plain.fit(g, device=device, generator_rng=torch.Generator(device).manual_seed(0))
    cond = InterFaceGAN(attrs.evolve(cfg, condition=("slant",)))
    cond.fit(g, device=device, generator_rng=torch.Generator(device).manual_seed(0))
    # conditional manipulation (section 2.3) keeping the ten digit probabilities: ink without the digit
    from ganforge import ConfigError

    # the projection alone, and with the extremes also balanced over the digits (balance_by: ink ranked
    # within each digit, as thick and thin strokes are otherwise mostly different digits)
    digits = tuple(f"mnist-digit:{k}" for k in range(10))
    digit_editors: dict[str, Any] = {
        "projection": InterFaceGAN(attrs.evolve(cfg, condition=digits)),
        "balanced": InterFaceGAN(attrs.evolve(cfg, condition=digits, balance_by="mnist-digit"))}
    # and, in W+, the same direction on the styles after the coarse range only: the coarse styles
    # (4x4-8x8) set a digit's shape, the finer ones its strokes (GANSpace's E(v_i, j-k), style mixing)
    above_coarse = _above_coarse(g) if space == "w" else None
    if above_coarse is not None:
        digit_editors["styles"] = InterFaceGAN(attrs.evolve(cfg, space="w+", layers=above_coarse, condition=digits,
                                                            balance_by="mnist-digit"))
    for key, editor in digit_editors.items():
        try:
            editor.fit(g, device=device, generator_rng=torch.Generator(device).manual_seed(0))
        except ConfigError as exc:  # a latent space of few dimensions: ten conditions span it
            digit_editors[key] = str(exc)
    latents = sample_latents(g, s["seeds"], space, generator_rng=torch.Generator(device).manual_seed(1), device=device)
    alphas = torch.linspace(-3, 3, 13)
    near = alphas.abs() <= 1.5
    at_lo, at_hi = (int(torch.isclose(alphas, torch.tensor(a)).nonzero()) for a in (-1.5, 1.5))

    def sweep(editor: Any) -> tuple[list[float], torch.Tensor, torch.Tensor]:
        """Spearman rho of ink against alpha per seed, digit kept per seed, ink per seed and alpha."""
        start = lift(g, latents, space, editor.space)  # the same samples in the editor's space
        per_alpha = [scores(_render(g, editor.edit(start, float(a)), editor.space, s["batch"])) for a in alphas]
        ink = torch.stack([p["ink"] for p in per_alpha], 1)  # [seeds, A]
        digits = torch.stack([p["digit"] for p in per_alpha], 1)
        kept = (digits[:, near] == digits[:, 6:7]).all(1).float()
        return [spearman(alphas, ink[i]) for i in range(len(ink))], kept, ink

    rhos, kept, ink = sweep(plain)
    conditioned: dict[str, dict[str, Any]] = {}
    for key, editor in digit_editors.items():
        if isinstance(editor, str):
            conditioned[key] = {"error": editor}
            continue
        rhos_d, kept_d, ink_d = sweep(editor)
        conditioned[key] = {"mean_spearman_rho": sum(rhos_d) / len(rhos_d),
                            "digit_kept_abs_alpha_le_1.5": float(kept_d.mean()),
                            "ink_change_alpha_-1.5_to_1.5": float((ink_d[:, at_hi] - ink_d[:, at_lo]).mean()),
                            "mean_ink_per_alpha": ink_d.mean(0).tolist(), "space": editor.space,
                            "layers": editor.config.layers}
    # the pass/fail: the style-range edit where the generator has one, else the balanced edit in W
    judged = "styles" if "styles" in conditioned else "balanced"
    digit_conditioned = {**conditioned[judged], "method": judged}
    slant_change = {}
    for name, editor in (("unconditioned", plain), ("conditioned_on_slant", cond)):
        lo = scores(_render(g, editor.edit(latents, -3.0), space, s["batch"]))
        hi = scores(_render(g, editor.edit(latents, 3.0), space, s["batch"]))
        slant_change[name] = {"slant": float((hi["slant"] - lo["slant"]).abs().mean()),
                              "slant_signed": float((hi["slant"] - lo["slant"]).mean()),
                              "ink": float((hi["ink"] - lo["ink"]).mean())}
    ratio = slant_change["conditioned_on_slant"]["slant"] / max(slant_change["unconditioned"]["slant"], 1e-12)
    signed = abs(slant_change["conditioned_on_slant"]["slant_signed"]) / max(
        abs(slant_change["unconditioned"]["slant_signed"]), 1e-12)
    if out is not None:
        rows = min(8, len(latents))
        with torch.no_grad():
            grid = torch.stack([_render(g, plain.edit(latents[:rows], float(a)), space, s["batch"])
                                for a in alphas], 1)
        save_samples(grid.flatten(0, 1), out / "latent-interfacegan-ink.png", nrow=len(alphas))
        editor = digit_editors[judged]
        if not isinstance(editor, str):  # the pass/fail edit, on the same samples
            start = lift(g, latents[:rows], space, editor.space)
            with torch.no_grad():
                grid = torch.stack([_render(g, editor.edit(start, float(a)), editor.space, s["batch"])
                                    for a in alphas], 1)
            save_samples(grid.flatten(0, 1), out / "latent-interfacegan-ink-conditioned.png", nrow=len(alphas))
    rho = sum(rhos) / len(rhos)
    return {"space": space, "alphas": alphas.tolist(), "mean_spearman_rho": rho,
            "digit_kept_abs_alpha_le_1.5": float(kept.mean()), "mean_ink_per_alpha": ink.mean(0).tolist(),
            "ink_change_alpha_-1.5_to_1.5": float((ink[:, at_hi] - ink[:, at_lo]).mean()),
            "conditioned_on_the_digit": digit_conditioned,
            "conditioned_on_the_digit_every_style": conditioned["balanced"],
            "conditioned_on_the_digit_by_projection_only": conditioned["projection"],
            "slant_change_alpha_-3_to_3": slant_change, "condition_slant_ratio": ratio,
            "condition_slant_ratio_signed_mean": signed,
            "cos_conditioned_unconditioned": float(torch.nn.functional.cosine_similarity(
                cond.direction.flatten(), plain.direction.flatten(), dim=0)),
            "pass": {"spearman": rho >= t["interfacegan_spearman"],
                     "digit_kept": float(kept.mean()) >= t["interfacegan_digit_kept"],
                     "digit_kept_conditioned_on_the_digit": digit_conditioned.get("digit_kept_abs_alpha_le_1.5", 0)
                     >= t["interfacegan_digit_kept"] and digit_conditioned.get("mean_spearman_rho", 0)
                     >= t["interfacegan_spearman"],
                     "condition": ratio <= t["interfacegan_condition_ratio"]}}


def measure_ganspace(g: Any, space: str, s: dict[str, int], scores: Scores, device: torch.device,
                     out: Path | None, t: dict[str, float] = TARGETS) -> dict[str, Any]:
    from ganforge import save_samples
    from ganforge_plugins.latent.ganspace import GANSpace, GANSpaceConfig
    from ganforge_plugins.latent.spaces import sample_latents, space_names

    editor = GANSpace(GANSpaceConfig(pca_space=space, num_samples=s["samples"], num_components=10))
    editor.fit(g, device=device, generator_rng=torch.Generator(device).manual_seed(2))
    ratio = editor.explained_variance_ratio.tolist()
    latents = sample_latents(g, s["seeds"], space, generator_rng=torch.Generator(device).manual_seed(3), device=device)
    base = _render(g, latents, space, s["batch"])
    d = editor.direction(0).to(device) * 3
    r = torch.randn(d.shape, generator=torch.Generator().manual_seed(4)).to(device)
    r = r / r.norm() * d.norm()

    def change(step: torch.Tensor) -> float:
        moved = _render(g, latents + step.reshape(1, *latents.shape[1:]), space, s["batch"])
        return float((moved - base).flatten(1).norm(dim=1).mean())

    pc1, rand = change(d), change(r)
    # the first three components: which attribute each moves, and how monotonically (Spearman rho of the
    # attribute against alpha per seed, averaged; the attribute with the largest |rho| is the component's)
    # and the share of seeds whose digit (the judge's class) is not the same at every alpha: a component
    # that morphs one digit into another moves no single attribute monotonically
    alphas = torch.linspace(-3, 3, 7)

    def sweep(edit: Any, edit_space: str) -> tuple[dict[str, Any], torch.Tensor]:
        """One component's numbers from ``edit(alpha) -> latents``, and its first six seeds' strips."""
        images = [_render(g, edit(float(a)), edit_space, s["batch"]) for a in alphas]
        per_alpha = [scores(x) for x in images]
        rhos = {}
        for attr in ATTRIBUTES:
            values = torch.stack([q[attr].float() for q in per_alpha], 1)
            rhos[attr] = sum(spearman(alphas, values[i]) for i in range(len(values))) / len(values)
        best = max(rhos, key=lambda a: abs(rhos[a]))
        digits = torch.stack([q["digit"] for q in per_alpha], 1)
        return ({"mean_spearman_rho": rhos, "moves": best, "rho": rhos[best],
                 "digit_changed": float((digits != digits[:, :1]).any(1).float().mean())},
                torch.stack([x[:6] for x in images], 1))  # [6 seeds, 7 alphas, ...]

    components, component_strips = [], []
    for k in range(min(3, len(ratio))):
        numbers, strip = sweep(lambda a, k=k: editor.edit(latents, a, component=k), space)
        components.append({"component": k, **numbers})
        component_strips.append(strip)
    if out is not None:  # a row per seed, alpha -3 .. 3 left to right; PC0's six rows, then PC1's, PC2's
        save_samples(torch.cat(component_strips).flatten(0, 1), out / "latent-ganspace-components.png", nrow=7)
    result: dict[str, Any] = {"explained_variance_ratio": ratio, "pc1_over_last": ratio[0] / max(ratio[-1], 1e-12),
                              "pixel_l2_pc1": pc1, "pixel_l2_random_same_norm": rand,
                              "first_three_components": components,
                              "pass": {"variance": ratio[0] > ratio[-1], "pc1_beats_random": pc1 > rand,
                                       "first_three_monotonic": all(abs(c["rho"]) >= t["ganspace_component_rho"]
                                                                    for c in components)}}
    if "w+" in space_names(g) and space == "w":
        base_scores = scores(base)
        fine = ("ink", "slant", "width", "height")  # the attributes a style range may change, the digit kept
        spread = {k: float(base_scores[k].float().std()) or 1.0 for k in fine}
        ranges: dict[str, Any] = {}
        strips = []
        named = [k for k in ("coarse", "middle", "fine") if len(g.layer_ranges.get(k, range(0))) > 0]
        ws = latents[:, None].expand(-1, g.num_ws, -1)
        # coarse against the finest non-empty range (a 32x32 StyleGAN has no "fine" layers: 64x64 and up)
        for layers in (named[0], named[-1]):  # the same samples, hence the same components, on a layer range
            ed = GANSpace(GANSpaceConfig(pca_space="w", layers=layers, num_samples=s["samples"], num_components=10))
            ed.fit(g, device=device, generator_rng=torch.Generator(device).manual_seed(2))
            moved = _render(g, ed.edit(ws, 3.0), "w+", s["batch"])
            sc = scores(moved)
            change = {k: float((sc[k] - base_scores[k]).abs().mean()) / spread[k] for k in fine}
            ranges[layers] = {**{f"{k}_change_in_std": change[k] for k in fine},
                              "digit_changed": float((sc["digit"] != base_scores["digit"]).float().mean()),
                              "pixel_l2": float((moved - base).flatten(1).norm(dim=1).mean()),
                              "changes_most": max(change, key=change.__getitem__)}
            strips.append(torch.stack([_render(g, ed.edit(ws[:8], float(a)), "w+", s["batch"])
                                       for a in torch.linspace(-3, 3, 7)], 1))
            if layers == named[-1]:  # reported beside the pass/fail, which is on every style
                result[f"first_three_components_on_{layers}"] = [
                    {"component": k, **sweep(lambda a, k=k, ed=ed: ed.edit(ws, a, component=k), "w+")[0]}
                    for k in range(len(components))]
        result["layer_ranges_pc1_alpha_3"] = ranges
        if out is not None:
            save_samples(torch.cat(strips).flatten(0, 1), out / "latent-ganspace-pc1-layer-ranges.png", nrow=7)
    else:
        result["layer_ranges_pc1_alpha_3"] = "the generator has no W+ (no layer ranges)"
    return result


def measure_transformer(g: Any, space: str, s: dict[str, int], scores: Scores, device: torch.device,
                        out: Path | None, t: dict[str, float] = TARGETS) -> dict[str, Any]:
    from ganforge import save_samples
    from ganforge_plugins.latent.interfacegan import InterFaceGAN, InterFaceGANConfig
    from ganforge_plugins.latent.latent_transformer import LatentTransformer, LatentTransformerConfig
    from ganforge_plugins.latent.spaces import sample_latents

    lt = LatentTransformer(LatentTransformerConfig(space=space, attribute="ink", preserve=("slant", "mnist-digit"),
                                                   num_samples=s["samples"], steps=s["lt_steps"],
                                                   classifier_steps=s["lt_classifier_steps"]))
    t0 = time.perf_counter()
    lt.fit(g, device=device, generator_rng=torch.Generator(device).manual_seed(5))
    fit_s = time.perf_counter() - t0
    ig = InterFaceGAN(InterFaceGANConfig(space=space, attribute="ink", num_samples=s["samples"], num_keep=s["keep"],
                                         batch_size=s["batch"]))
    ig.fit(g, device=device, generator_rng=torch.Generator(device).manual_seed(0))
    latents = sample_latents(g, s["seeds"], space, generator_rng=torch.Generator(device).manual_seed(6), device=device)
    base_img = _render(g, latents, space, s["batch"])
    base = scores(base_img)
    positive = base["ink"] > lt.threshold
    sign = torch.where(positive, -1.0, 1.0).to(device)  # towards the other label
    moved = scores(_render(g, lt.edit(latents, sign), space, s["batch"]))
    flipped = (moved["ink"] > lt.threshold) != positive
    ink_lt = (moved["ink"] - base["ink"]).abs().mean()
    unit = scores(_render(g, ig.edit(latents, sign), space, s["batch"]))
    per_alpha = (unit["ink"] - base["ink"]).abs().mean().clamp_min(1e-12)
    scale = float(ink_lt / per_alpha)
    matched = scores(_render(g, ig.edit(latents, sign * scale), space, s["batch"]))

    def side_effects(after: dict[str, torch.Tensor]) -> dict[str, float]:
        d_ink = float((after["ink"] - base["ink"]).abs().mean())
        return {"ink_change": d_ink, "slant_change": float((after["slant"] - base["slant"]).abs().mean()),
                "digit_changed": float((after["digit"] != base["digit"]).float().mean())}

    mine, theirs = side_effects(moved), side_effects(matched)
    if out is not None:
        rows = min(8, len(latents))
        grid = torch.stack([_render(g, lt.edit(latents[:rows], float(a)), space, s["batch"])
                            for a in torch.linspace(-1, 1, 5)], 1)
        save_samples(grid.flatten(0, 1), out / "latent-transformer-ink.png", nrow=5)
    flip = float(flipped.float().mean())
    return {"threshold_ink": lt.threshold, "latent_classifier_accuracy": lt.classifier_accuracy, "fit_seconds": fit_s,
            "flip_rate_alpha_1": flip, "flip_rate_negatives": float(flipped[~positive].float().mean()),
            "flip_rate_positives": float(flipped[positive].float().mean()),
            "transformer": mine, "interfacegan_same_ink_change": {**theirs, "alpha": scale},
            "pass": {"flip": flip >= t["transformer_flip"],
                     "others_change_less": mine["slant_change"] < theirs["slant_change"]
                     and mine["digit_changed"] <= theirs["digit_changed"]}}


def measure_arithmetic(g: Any, space: str, s: dict[str, int], scores: Scores, device: torch.device,
                       out: Path | None, t: dict[str, float] = TARGETS) -> dict[str, Any]:
    from ganforge import save_samples
    from ganforge_plugins.latent.arithmetic import arithmetic
    from ganforge_plugins.latent.spaces import sample_latents

    latents = sample_latents(g, s["samples"], space, generator_rng=torch.Generator(device).manual_seed(7),
                             device=device)
    sc = scores(_render(g, latents, space, s["batch"]))
    groups: dict[str, torch.Tensor] = {}
    sevens_median = math.nan
    for digit in (3, 7):
        mask = (sc["digit"] == digit) & (sc["digit_p"] > 0.9)
        if int(mask.sum()) < 4:
            return {"error": f"the generator drew {int(mask.sum())} confident {digit}s in {s['samples']} samples"}
        ink = sc["ink"][mask]
        lo, hi = ink.quantile(0.25), ink.quantile(0.75)
        groups[f"thin {digit}"] = torch.nonzero(mask & (sc["ink"] <= lo)).flatten()
        groups[f"bold {digit}"] = torch.nonzero(mask & (sc["ink"] >= hi)).flatten()
        if digit == 7:
            sevens_median = float(ink.median())
    rng = torch.Generator().manual_seed(8)
    results = []
    for _ in range(s["trials"]):
        means = {k: latents[idx[torch.randint(0, len(idx), (s["group"],), generator=rng)].to(latents.device)].mean(0)
                 for k, idx in groups.items()}
        results.append(arithmetic(means["bold 3"], means["thin 3"], means["thin 7"]))
    made = _render(g, torch.stack(results), space, s["batch"])
    got = scores(made)
    ok = (got["digit"] == 7) & (got["ink"] > sevens_median)
    if out is not None:
        save_samples(made[:16], out / "latent-arithmetic-bold7.png", nrow=16)
    rate = float(ok.float().mean())
    return {"group_sizes": {k: len(v) for k, v in groups.items()}, "group_latents_averaged": s["group"],
            "median_ink_of_7s": sevens_median, "classified_7": float((got["digit"] == 7).float().mean()),
            "bold": float((got["ink"] > sevens_median).float().mean()), "success_rate": rate,
            "pass": {"success": rate >= t["arithmetic_success"]}}


def measure_truncation(g: Any, s: dict[str, int], scores: Scores, device: torch.device, out: Path | None,
                       t: dict[str, float] = TARGETS) -> dict[str, Any]:
    """StyleGAN's truncation trick (section 3.2 of Karras et al. 2019): for each psi, the share of
    samples the digit classifier reads with p >= 0.9 (fidelity) and the mean pairwise pixel distance
    between samples (diversity), on the same latents; then the same towards the nearest of
    ``TRUNCATION_MODES`` k-means centres of W (multi-modal truncation, Mokady et al. 2022), as ten
    digits put ``w_avg`` between the modes."""
    from ganforge import save_samples
    from ganforge_plugins.latent.spaces import sample_latents, space_names
    from ganforge_plugins.latent.style import truncate, truncate_to_modes, truncation_modes

    if "w" not in space_names(g):
        return {"skipped": "the generator has no W space with a tracked average"}
    n = s.get("truncation_samples", s["seeds"])
    w = sample_latents(g, n, "w", generator_rng=torch.Generator(device).manual_seed(13), device=device)
    modes = truncation_modes(g, TRUNCATION_MODES, num_samples=max(s["samples"], 4 * TRUNCATION_MODES),
                             generator_rng=torch.Generator(device).manual_seed(14), device=device)

    def sweep(centre: Any) -> tuple[list[dict[str, Any]], list[torch.Tensor]]:
        rows, strips, digits = [], [], []
        for psi in PSIS:
            images = _render(g, centre(w, psi), "w", s["batch"])
            sc = scores(images)
            digits.append(sc["digit"])
            flat = images.flatten(1).float().cpu()
            sub = flat[: min(len(flat), 500)]
            distances = torch.cdist(sub, sub)
            k = len(sub)
            classes = torch.bincount(sc["digit"], minlength=10).float() / len(sc["digit"])
            confident = float((sc["digit_p"] >= 0.9).float().mean())
            rows.append({"psi": psi, "confident": confident,
                         "confident_standard_error": math.sqrt(confident * (1 - confident) / len(images)),
                         "pairwise_pixel_distance": float(distances.sum() / max(k * (k - 1), 1)),
                         "min_class_fraction": float(classes.min())})
            strips.append(images[:10])
        # the share of samples already read as the digit they end on at the smallest psi (the centre's digit):
        # how far truncation has pulled them, and, towards one w_avg, why the confident share can dip on the way
        last = digits[PSIS.index(min(PSIS))]
        for row, d in zip(rows, digits, strict=True):
            row["digit_of_the_centre"] = float((d == last).float().mean())
        return rows, strips

    def trade(rows: list[dict[str, Any]]) -> dict[str, bool]:
        confident = [r["confident"] for r in rows]
        diversity = [r["pairwise_pixel_distance"] for r in rows]
        return {"confident_rises": all(a <= b for a, b in itertools.pairwise(confident)),
                "diversity_falls": all(a >= b for a, b in itertools.pairwise(diversity))}

    rows, strips = sweep(lambda w, psi: truncate(w, g.w_avg, psi))
    multi, multi_strips = sweep(lambda w, psi: truncate_to_modes(w, modes, psi))
    if out is not None:
        save_samples(torch.cat(strips), out / "latent-truncation.png", nrow=10)
        save_samples(torch.cat(multi_strips), out / "latent-truncation-multimodal.png", nrow=10)
    multi_pass = trade(multi)
    return {"samples": n, "psi": list(PSIS), "rows": rows,
            "multimodal": {"modes": TRUNCATION_MODES, "rows": multi},
            "pass": {**trade(rows), **{f"multimodal_{k}": v for k, v in multi_pass.items()}}}


def real_test_images(trained: Any, manager: Any, n: int) -> torch.Tensor:
    """``n`` images of the checkpoint's own dataset (its test split where it has one) at the generator's shape."""
    data = trained.config.data
    comp = manager.get("dataset", data.name)
    params = data.params
    if "split" in {a.name for a in attrs.fields(type(params))}:
        params = attrs.evolve(params, split="test")
    images = comp.factory(params).images
    if tuple(images.shape[1:]) != tuple(trained.spec.shape):
        raise ValueError(f"real images of shape {tuple(images.shape[1:])} for a generator of {trained.spec.shape}")
    return images[-n:]  # the last ones (digits has no split: the tail of the set)


def measure_inversion(trained: Any, manager: Any, s: dict[str, int], device: torch.device,
                      out: Path | None, t: dict[str, float] = TARGETS) -> dict[str, Any]:
    from ganforge import save_samples
    from ganforge_plugins.latent.encoder import EncoderConfig, encode, invert_images, train_encoder
    from ganforge_plugins.latent.inversion import InversionConfig, invert, psnr
    from ganforge_plugins.latent.spaces import render, sample_latents, space_names

    g = trained.module
    space = "w+" if "w+" in space_names(g) else "z"
    n, steps = s["invert_images"], s["invert_steps"]
    cfg = InversionConfig(space=space, steps=steps, lr=0.05 if space != "z" else 0.1)
    known = sample_latents(g, n, space, generator_rng=torch.Generator(device).manual_seed(9), device=device)
    with torch.no_grad():
        generated = render(g, known, space)
    _, gen_record = invert(g, generated, cfg, generator_rng=torch.Generator(device).manual_seed(10))
    t0 = time.perf_counter()
    encoder, history = train_encoder(g, EncoderConfig(space=space, steps=s["encoder_steps"],
                                                      base_channels=s["encoder_channels"]),
                                     generator_rng=torch.Generator(device).manual_seed(11), device=device)
    encoder_train_s = time.perf_counter() - t0
    real = real_test_images(trained, manager, n).to(device)
    records, latents = {}, {}
    for method in ("optimise", "hybrid", "encoder"):
        _sync(device)
        latents[method], records[method] = invert_images(g, real, method, cfg, encoder=encoder,
                                                         generator_rng=torch.Generator(device).manual_seed(12))
        _sync(device)
    with torch.no_grad():
        recon = {m: render(g, lat, space) for m, lat in latents.items()}
    mse = {m: float((r - real).square().mean()) for m, r in recon.items()}
    # time of the encoder alone (a forward pass) against the optimisation, both on the same images
    _sync(device)
    t0 = time.perf_counter()
    encode(encoder, real, generator=g)
    _sync(device)
    encode_s = time.perf_counter() - t0
    speedup = records["optimise"]["seconds"] / max(encode_s, 1e-9)
    if out is not None:
        save_samples(torch.cat([real, recon["optimise"], recon["hybrid"], recon["encoder"]]),
                     out / "latent-inversion-real.png", nrow=len(real))
    gen_psnr = sum(gen_record["psnr"]) / len(gen_record["psnr"])
    return {"space": space, "steps": steps, "images": n,
            "feature_loss": f"{cfg.feature_network} x {cfg.feature_weight}",
            "generated_mean_psnr": gen_psnr, "generated_min_psnr": min(gen_record["psnr"]),
            "generated_seconds": gen_record["seconds"],
            "real_mse": mse, "real_mean_psnr": {m: float(psnr(r, real).mean()) for m, r in recon.items()},
            "real_seconds": {m: r["seconds"] for m, r in records.items()}, "encoder_forward_seconds": encode_s,
            "encoder_training_seconds": encoder_train_s, "encoder_final_loss": history["total"][-1],
            "encoder_speedup_over_optimisation": speedup,
            "pass": {"generated_psnr": gen_psnr >= t["inversion_generated_psnr"],
                     "hybrid_beats_optimise": mse["hybrid"] < mse["optimise"],
                     "hybrid_beats_encoder": mse["hybrid"] < mse["encoder"],
                     "encoder_speedup": speedup >= t["encoder_speedup"]}}


def measure(checkpoint: str | Path, *, scale: str = "full", device: str = "auto", out: Path | None = None,
            only: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every measurement on ``checkpoint``; pictures go to ``out`` when given."""
    from ganforge import get_plugin_manager, load_generator, resolve_device
    from ganforge_plugins.latent.spaces import space_names

    manager = get_plugin_manager()
    dev = resolve_device(device)
    trained = load_generator(checkpoint, device=dev, manager=manager)
    g = trained.module
    space = "w" if "w" in space_names(g) else "z"
    s = SCALES[scale]
    t = CPU_TARGETS if scale == "cpu" else TARGETS
    scores = Scores(manager)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    sections = {"interfacegan": lambda: measure_interfacegan(g, space, s, scores, dev, out, t=t),
                "ganspace": lambda: measure_ganspace(g, space, s, scores, dev, out, t=t),
                "truncation": lambda: measure_truncation(g, s, scores, dev, out, t=t),
                "latent_transformer": lambda: measure_transformer(g, space, s, scores, dev, out, t=t),
                "vector_arithmetic": lambda: measure_arithmetic(g, space, s, scores, dev, out, t=t),
                "inversion": lambda: measure_inversion(trained, manager, s, dev, out, t=t)}
    result: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for name, run in sections.items():
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        result[name] = run()
        seconds[name] = time.perf_counter() - t0
        print(f"latent_mnist: {name} done in {seconds[name]:.1f} s", file=sys.stderr, flush=True)
    ckpt = trained.checkpoint
    result["meta"] = {
        "checkpoint": str(Path(ckpt.path).resolve()), "step": ckpt.step, "generator": trained.config.generator.name,
        "data": trained.config.data.name, "shape": list(trained.spec.shape), "edit_space": space, "scale": scale,
        "settings": s, "targets": t, "seconds": seconds, "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if trained.config.data.name != "mnist":
        result["meta"]["note"] = ("the digit scorer is ganforge's MNIST classifier: on other data (it recognises "
                                  "13% of scikit-learn's digits) the digit-based numbers mean little")
    return result


def markdown(result: dict[str, Any], command: str) -> str:
    """A summary: every section's checks and its headline numbers."""
    meta = result["meta"]
    lines = [f"# Latent space of {meta['generator']} on {meta['data']} ({meta['scale']} scale)", "",
             f"{meta['device_name']}, {meta['threads']} threads, torch {meta['torch']}, {meta['date']}; checkpoint "
             f"step {meta['step']}, edits in {meta['edit_space']!r}.", "",
             "| section | check | result |", "|---|---|---|"]
    for name, section in result.items():
        if name == "meta" or not isinstance(section, dict):
            continue
        for check, ok in section.get("pass", {}).items():
            lines.append(f"| {name} | {check} | {'met' if ok else 'missed'} |")
    ig, gs, tr, inv = (result.get(k, {}) for k in ("interfacegan", "ganspace", "truncation", "inversion"))
    lines.append("")
    nan = float("nan")
    if ig:

        def edit(d: dict[str, Any]) -> str:
            return (f"rho {d.get('mean_spearman_rho', nan):.3f}, digit kept "
                    f"{d.get('digit_kept_abs_alpha_le_1.5', nan):.1%}, ink "
                    f"{d.get('ink_change_alpha_-1.5_to_1.5', nan):+.3f} from alpha -1.5 to 1.5")

        cond = ig.get("conditioned_on_the_digit", {})
        every = ig.get("conditioned_on_the_digit_every_style", {})
        proj = ig.get("conditioned_on_the_digit_by_projection_only", {})
        lines.append(f"- InterFaceGAN on ink in {ig['space']!r}: {edit(ig)}. Conditioned on the digit (the ten digit "
                     f"directions projected out, the extremes balanced over the digits): {edit(every)}"
                     + (f"; on the styles {cond['layers']} of W+ only (the pass/fail): {edit(cond)}"
                        if cond.get("method") == "styles" else "")
                     + f". By the projection alone: {edit(proj)}.")

    def components(cs: list[dict[str, Any]]) -> str:
        return ", ".join(f"PC{c['component']} moves {c['moves']} (rho {c['rho']:.2f}; the digit changes along it "
                         f"for {c.get('digit_changed', nan):.0%} of seeds)" for c in cs)

    def sweep(rows: list[dict[str, Any]], read_as: str) -> str:
        return "; ".join(f"psi {r['psi']}: {r['confident']:.1%} (± {r.get('confident_standard_error', nan):.1%}) "
                         f"confident, pairwise distance "
                         f"{r['pairwise_pixel_distance']:.2f}, {r.get('digit_of_the_centre', nan):.0%} read as "
                         f"{read_as}" for r in rows)

    if gs:
        lines.append(f"- GANSpace: {components(gs.get('first_three_components', []))}.")
        for key in (k for k in gs if k.startswith("first_three_components_on_")):
            lines.append(f"- GANSpace on the {key.rsplit('_', 1)[-1]!r} styles only: {components(gs[key])}.")
    if tr.get("rows"):
        towards_w_avg = sweep(tr["rows"], "the average image's digit")
        lines.append(f"- Truncation towards w_avg: {towards_w_avg}.")
    if tr.get("multimodal"):
        towards_modes = sweep(tr["multimodal"]["rows"], "their centre's digit")
        lines.append(f"- Truncation towards the nearest of {tr['multimodal']['modes']} k-means centres of W "
                     f"(multi-modal, Mokady et al. 2022): {towards_modes}.")
    if inv:
        psnr = inv["real_mean_psnr"]
        lines.append(f"- Inversion: generated images {inv['generated_mean_psnr']:.1f} dB in {inv['space']}; real test "
                     f"digits at {inv['steps']} steps: optimisation {psnr['optimise']:.2f} dB, encoder "
                     f"{psnr['encoder']:.2f} dB, hybrid {psnr['hybrid']:.2f} dB; the encoder is "
                     f"{inv['encoder_speedup_over_optimisation']:.0f}x faster than optimisation.")
    lines += ["", f"Command: `{command}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="run directory or checkpoint directory")
    parser.add_argument("--scale", choices=tuple(SCALES), default="full")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", help="directory for the JSON and pictures (default: "
                                      "benchmarks/results/latent-GENERATOR-DATASET)")
    parser.add_argument("--only", default="", help="comma-separated sections (default: all)")
    args = parser.parse_args(argv)
    if args.out:
        out = Path(args.out)
    else:
        from ganforge import load_generator

        config = load_generator(args.checkpoint).config
        results = Path(__file__).resolve().parent / "results"
        out = results / "cpu" / "latent" if args.scale == "cpu" else \
            results / f"latent-{config.generator.name}-{config.data.name}"
    result = measure(args.checkpoint, scale=args.scale, device=args.device, out=out,
                     only=tuple(x for x in args.only.split(",") if x))
    text = json.dumps(result, indent=1) + "\n"
    (out / "latent-mnist.json").write_text(text)
    command = " ".join(["python benchmarks/latent_mnist.py", *(argv if argv is not None else sys.argv[1:])])
    (out / "latent-mnist.md").write_text(markdown(result, command))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
