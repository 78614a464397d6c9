"""CPU smoke run of ``benchmarks/latent_mnist.py`` on a tiny StyleGAN trained for three steps: every
section runs and reports its numbers, targets and pictures (the numbers themselves need a trained
StyleGAN on MNIST; see the script's docstring)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from ganforge.cli import main as ganforge

from benchmarks.latent_mnist import main, spearman
from tests.conftest import TINY
from tests.conftest import TINY_STYLEGAN as STYLEGAN


def test_spearman_with_ties() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(x, torch.tensor([10.0, 20.0, 30.0, 40.0])) == pytest.approx(1.0)
    assert spearman(x, torch.tensor([4.0, 3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    # ranks of y with a tie: 1, 2.5, 2.5, 4 -> rho = 0.9486832980505138
    assert spearman(x, torch.tensor([0.0, 1.0, 1.0, 2.0])) == pytest.approx(0.9486832980505138)
    assert spearman(x, torch.zeros(4)) == 0.0


@pytest.mark.slow
def test_latent_benchmark_smoke(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # a W of 16 dimensions: room for the ink direction beside the ten digit directions projected out
        assert "w_dim = 8\n" in STYLEGAN
        (tmp_path / "stylegan.toml").write_text(STYLEGAN.replace("w_dim = 8\n", "w_dim = 16\n"))
        sets = [a for item in TINY if not item.startswith(("generator.", "discriminator.")) for a in ("--set", item)]
        assert ganforge(["train", str(tmp_path / "stylegan.toml"), "--out", str(tmp_path / "run"), *sets]) == 0
        out = tmp_path / "results"
        assert main([str(tmp_path / "run"), "--scale", "smoke", "--device", "cpu", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    result = json.loads((out / "latent-mnist.json").read_text())
    assert set(result) == {"interfacegan", "ganspace", "truncation", "latent_transformer", "vector_arithmetic",
                           "inversion", "meta"}
    assert result["meta"]["edit_space"] == "w" and result["meta"]["scale"] == "smoke"
    ig = result["interfacegan"]
    assert -1.0 <= ig["mean_spearman_rho"] <= 1.0 and len(ig["mean_ink_per_alpha"]) == 13
    assert 0.0 <= ig["digit_kept_abs_alpha_le_1.5"] <= 1.0 and math.isfinite(ig["condition_slant_ratio"])
    for key in ("conditioned_on_the_digit", "conditioned_on_the_digit_every_style",
                "conditioned_on_the_digit_by_projection_only"):
        cond = ig[key]
        assert 0.0 <= cond["digit_kept_abs_alpha_le_1.5"] <= 1.0 and len(cond["mean_ink_per_alpha"]) == 13, cond
    # the pass/fail edit of a W+ generator: the balanced direction on the styles after the coarse ones
    judged = ig["conditioned_on_the_digit"]
    assert judged["method"] == "styles" and judged["space"] == "w+" and judged["layers"] == "4:", judged
    every = ig["conditioned_on_the_digit_every_style"]
    assert every["space"] == "w" and every["layers"] == "all"
    assert judged["mean_ink_per_alpha"] != every["mean_ink_per_alpha"]  # another edit, other images
    ink = ig["mean_ink_per_alpha"]
    assert ig["ink_change_alpha_-1.5_to_1.5"] == pytest.approx(ink[9] - ink[3], abs=1e-6)
    gs = result["ganspace"]
    assert gs["explained_variance_ratio"][0] >= gs["explained_variance_ratio"][-1]
    assert set(gs["layer_ranges_pc1_alpha_3"]) == {"coarse", "middle"}  # a 16x16 StyleGAN has no fine layers
    assert [c["component"] for c in gs["first_three_components"]] == [0, 1, 2]
    for c in gs["first_three_components"]:  # matched to the attribute it moves most monotonically
        assert set(c["mean_spearman_rho"]) == {"ink", "slant", "width", "height", "digit_p"}
        assert c["moves"] == max(c["mean_spearman_rho"], key=lambda a: abs(c["mean_spearman_rho"][a]))
        assert -1 <= c["rho"] <= 1
        assert 0.0 <= c["digit_changed"] <= 1.0
    # the same components on the finest styles only, reported beside the pass/fail (on every style)
    ranged = gs["first_three_components_on_middle"]
    assert [c["component"] for c in ranged] == [0, 1, 2] and ranged != gs["first_three_components"]
    assert "first_three_monotonic" in gs["pass"] and len(gs["pass"]) == 3
    assert {"width_change_in_std", "height_change_in_std"} <= set(gs["layer_ranges_pc1_alpha_3"]["coarse"])
    tr = result["truncation"]
    assert [r["psi"] for r in tr["rows"]] == [1.0, 0.7, 0.5, 0.0]
    assert tr["rows"][-1]["pairwise_pixel_distance"] < 1e-4  # psi 0: every sample is the average
    assert tr["rows"][0]["pairwise_pixel_distance"] > tr["rows"][-1]["pairwise_pixel_distance"]
    multi = tr["multimodal"]
    assert multi["modes"] == 10 and [r["psi"] for r in multi["rows"]] == [1.0, 0.7, 0.5, 0.0]
    assert multi["rows"][0] == tr["rows"][0]  # psi 1 truncates nothing, whichever the centre
    assert multi["rows"][-1]["pairwise_pixel_distance"] > 1e-4  # psi 0: ten centres, not one image
    assert {"multimodal_confident_rises", "multimodal_diversity_falls"} <= set(tr["pass"])
    for rows in (tr["rows"], multi["rows"]):  # at psi 0 every sample is its centre's image, hence its digit
        assert rows[-1]["digit_of_the_centre"] == 1.0 and all(0 <= r["digit_of_the_centre"] <= 1 for r in rows)
        for r in rows:  # the binomial standard error of the confident share over the sweep's samples
            p = r["confident"]
            assert r["confident_standard_error"] == pytest.approx((p * (1 - p) / tr["samples"]) ** 0.5)
    lt = result["latent_transformer"]
    assert 0.0 <= lt["flip_rate_alpha_1"] <= 1.0 and lt["interfacegan_same_ink_change"]["alpha"] > 0
    inv = result["inversion"]
    assert inv["space"] == "w+" and set(inv["real_mse"]) == {"optimise", "hybrid", "encoder"}
    assert inv["encoder_speedup_over_optimisation"] > 1
    assert "hybrid_beats_encoder" in inv["pass"]
    summary = (out / "latent-mnist.md").read_text()
    assert "| truncation | diversity_falls |" in summary and "Command: `python benchmarks/latent_mnist.py" in summary
    for section in ("interfacegan", "ganspace", "truncation", "latent_transformer", "inversion"):
        assert all(isinstance(v, bool) for v in result[section]["pass"].values())
    for picture in ("interfacegan-ink", "interfacegan-ink-conditioned", "ganspace-pc1-layer-ranges",
                    "ganspace-components", "truncation", "truncation-multimodal", "transformer-ink", "inversion-real"):
        assert (out / f"latent-{picture}.png").is_file()
    from PIL import Image

    with Image.open(out / "latent-ganspace-components.png") as components, \
            Image.open(out / "latent-ganspace-pc1-layer-ranges.png") as ranges:
        # seven alphas a row, as the layer-range strips; six seeds for each of the three components
        assert components.width == ranges.width and components.height > ranges.height
    assert "the digit changes along it for" in summary and "read as the average image's digit" in summary
    assert "GANSpace on the 'middle' styles only: PC0 moves" in summary
