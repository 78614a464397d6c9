"""``ganforge interpolate``, ``edit`` and ``invert`` end to end on tiny checkpoints trained for a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ganforge import ConfigError, load_generator
from ganforge.cli import main
from ganforge_plugins.latent.commands import parse_alphas
from ganforge_plugins.latent.encoder import load_inverted
from ganforge_plugins.latent.inversion import psnr
from ganforge_plugins.latent.spaces import render
from PIL import Image

from tests.conftest import TINY, sets
from tests.conftest import TINY_STYLEGAN as STYLEGAN

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("latent-cli")
    unconditional = ["generator.name=dcgan", "discriminator.name=dcgan", *TINY]
    assert main(["train", "--out", str(base / "dcgan"), *sets(unconditional)]) == 0
    assert main(["train", "--out", str(base / "default"), *sets(TINY)]) == 0  # class-conditional
    (base / "stylegan.toml").write_text(STYLEGAN)
    style = [s for s in TINY if not s.startswith(("generator.", "discriminator."))]
    assert main(["train", str(base / "stylegan.toml"), "--out", str(base / "stylegan"), *sets(style)]) == 0
    return {"dcgan": base / "dcgan", "default": base / "default", "stylegan": base / "stylegan"}


def error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("ganforge: error: ") and "Traceback" not in err
    return err


def test_parse_alphas() -> None:
    assert parse_alphas("-3:3:7") == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    assert parse_alphas("-1,0.5,2") == [-1.0, 0.5, 2.0]
    assert parse_alphas("2:5:1") == [2.0]
    for bad in ("-3:3", "a,b", "0:1:0"):
        with pytest.raises(ConfigError, match=r"--alphas .*START:STOP:COUNT"):
            parse_alphas(bad)


def test_interpolate_writes_a_strip_and_a_gif(runs, tmp_path: Path, capsys) -> None:
    out = tmp_path / "strip.png"
    assert main(["interpolate", str(runs["dcgan"]), "--out", str(out), "--steps", "5", "--pairs", "3"]) == 0
    with Image.open(out) as im:
        assert im.size == (5 * 18 + 2, 3 * 18 + 2)  # 16x16 images with 2-pixel padding
    with Image.open(tmp_path / "strip.gif") as gif:
        assert gif.n_frames == 8  # 5 forth, 3 back
        assert gif.size == (3 * 18 + 2, 18 + 2)  # one frame: the three rows side by side
    gif = tmp_path / "w.gif"
    assert main(["interpolate", str(runs["stylegan"]), "--out", str(tmp_path / "w.png"), "--gif", str(gif),
                 "--space", "w+", "--mode", "lerp", "--steps", "3", "--pairs", "2"]) == 0
    with Image.open(gif) as im:
        assert im.n_frames == 4
    assert "has no latent space 'w'" in error_of(["interpolate", str(runs["dcgan"]), "--out", str(out),
                                                  "--space", "w"], capsys)
    assert "--out 'x.jpg': expected a .png file" in error_of(["interpolate", str(runs["dcgan"]), "--out", "x.jpg"],
                                                             capsys)


def test_edit_grid_scores_and_saved_direction(runs, tmp_path: Path, capsys) -> None:
    grid, direction = tmp_path / "ink.png", tmp_path / "ink.safetensors"
    argv = ["edit", str(runs["dcgan"]), "--editor", "interfacegan", "--attribute", "ink", "--alphas", "-3:3:7",
            "-n", "4", "--param", "num_samples=300", "--param", "num_keep=60", "--out", str(grid)]
    capsys.readouterr()
    assert main([*argv, "--save-direction", str(direction)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["alphas"] == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0] and result["space"] == "z"
    assert result["mean_score"][-1] > result["mean_score"][0]  # the direction points towards more ink
    assert json.loads((tmp_path / "ink.json").read_text()) == result
    with Image.open(grid) as im:
        assert im.size == (7 * 18 + 2, 4 * 18 + 2)
    side = json.loads((tmp_path / "ink.safetensors.json").read_text())
    assert side["attribute"] == "ink" and side["generator"]["checkpoint"].endswith("step-00000003")
    again = tmp_path / "again.png"
    assert main(["edit", str(runs["dcgan"]), "--direction", str(direction), "--alphas", "-3:3:7", "-n", "4",
                 "--out", str(again)]) == 0
    assert again.read_bytes() == grid.read_bytes()  # the same direction and the same samples
    err = error_of(["edit", str(runs["stylegan"]), "--direction", str(direction), "--out", str(again)], capsys)
    assert "belongs to another generator" in err
    err = error_of(["edit", str(runs["dcgan"]), "--editor", "latent-transformer", "--out", str(again)], capsys)
    assert "space: DCGANGenerator has no latent space 'w'" in err
    err = error_of(["edit", str(runs["dcgan"]), "--editor", "ganspace", "--attribute", "ink", "--out", str(again)],
                   capsys)
    assert "--attribute: editor 'ganspace' has no 'attribute' setting" in err
    # named by the option, not by the field an editor's --param num_samples shares
    assert "edit --num-samples: must be >= 1" in error_of(["edit", str(runs["dcgan"]), "-n", "0", "--out", str(again)],
                                                          capsys)
    assert "--param 'bogus=1': expected KEY=VALUE" in error_of(
        ["edit", str(runs["dcgan"]), "--param", "bogus=1", "--out", str(again)], capsys)


def test_edit_with_the_latent_transformer_on_a_stylegan(runs, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["edit", str(runs["stylegan"]), "--editor", "latent-transformer", "--attribute", "ink",
                 "--alphas", "-1,0,1", "-n", "3", "--param", "num_samples=200", "--param", "steps=30",
                 "--param", "classifier_steps=30", "--param", 'preserve=["slant"]',
                 "--out", str(tmp_path / "lt.png")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["space"] == "w" and len(result["mean_score"]) == 3


def test_edit_balance_by_fits_the_attribute_within_each_class_of_a_classifier(runs, tmp_path: Path, capsys) -> None:
    """The README's line: InterFaceGAN's ink direction in W fitted within each digit of the MNIST classifier."""
    plain, balanced = tmp_path / "plain.safetensors", tmp_path / "balanced.safetensors"
    argv = ["edit", str(runs["stylegan"]), "--editor", "interfacegan", "--attribute", "ink", "--space", "w",
            "--alphas", "-1,0,1", "-n", "2", "--param", "num_samples=200", "--param", "num_keep=40"]
    assert main([*argv, "--out", str(tmp_path / "plain.png"), "--save-direction", str(plain)]) == 0
    assert main([*argv, "--param", "balance_by=mnist-digit", "--out", str(tmp_path / "balanced.png"),
                 "--save-direction", str(balanced)]) == 0
    assert json.loads((tmp_path / "balanced.safetensors.json").read_text())["balance_by"] == "mnist-digit"
    assert json.loads((tmp_path / "plain.safetensors.json").read_text())["balance_by"] == ""
    import safetensors.torch

    a, b = (safetensors.torch.load_file(str(f))["direction"] for f in (plain, balanced))
    assert float((a - b).norm()) > 1e-3  # other extremes, another direction
    err = error_of([*argv, "--param", "balance_by=slant", "--out", str(tmp_path / "x.png")], capsys)
    assert "balance_by: 'slant' scores one attribute" in err


def test_edit_layers_confines_the_interfacegan_direction_to_a_style_range(runs, tmp_path: Path, capsys) -> None:
    """The README's line: the ink direction on the middle styles of W+ only, the coarse ones untouched."""
    saved = tmp_path / "middle.safetensors"
    argv = ["edit", str(runs["stylegan"]), "--editor", "interfacegan", "--attribute", "ink", "--alphas", "-1,0,1",
            "-n", "2", "--param", "num_samples=200", "--param", "num_keep=40", "--out", str(tmp_path / "m.png")]
    assert main([*argv, "--space", "w+", "--param", "layers=middle", "--save-direction", str(saved)]) == 0
    import safetensors.torch

    direction = safetensors.torch.load_file(str(saved))["direction"]  # [num_ws, w_dim]
    assert json.loads((tmp_path / "middle.safetensors.json").read_text())["layers"] == "middle"
    assert bool((direction[:4] == 0).all()) and bool((direction[4:].norm(dim=1) > 0.99).all())
    err = error_of([*argv, "--space", "w", "--param", "layers=middle"], capsys)
    assert ("layers: must be 'all' with space = 'w': a style range ('middle') confines the edit to W+ and needs "
            "space = 'w+'") in err


def test_invert_methods_and_files(runs, tmp_path: Path, capsys) -> None:
    targets = tmp_path / "targets.npy"
    assert main(["sample", str(runs["dcgan"]), "-n", "4", "--seed", "3", "--out", str(targets)]) == 0
    encoder = tmp_path / "enc.safetensors"
    results = {}
    for method in ("optimise", "hybrid", "encoder"):
        extra = ["--encoder-steps", "100", "--save-encoder", str(encoder)] if method == "hybrid" else []
        extra += ["--encoder", str(encoder)] if method == "encoder" else ["--steps", "20", "--feature-weight", "0"]
        capsys.readouterr()
        assert main(["invert", str(runs["dcgan"]), str(targets), "--method", method, "--out", str(tmp_path / method),
                     *extra]) == 0
        captured = capsys.readouterr()
        results[method] = json.loads(captured.out)
        assert json.loads((tmp_path / method / "inversion.json").read_text()) == results[method]
        # the shared progress line: at least the final one without a terminal, with the total of this method
        # (a loaded encoder has no steps to show)
        total = {"optimise": 20, "hybrid": 120}.get(method)
        assert total is None or (f"invert ({method}, 4 images) [" in captured.err and \
            f"] {total}/{total} steps elapsed" in captured.err)
    assert results["hybrid"]["mean_psnr"] > results["optimise"]["mean_psnr"]
    assert results["encoder"]["steps"] == 0 and results["encoder"]["encoder"] == {"file": str(encoder)}
    # the saved latents reproduce the reported reconstructions
    trained = load_generator(runs["dcgan"])
    latents, meta = load_inverted(tmp_path / "hybrid" / "latents.safetensors", trained)
    assert meta["method"] == "hybrid" and meta["space"] == "z" and latents.shape == (4, 16)
    images = torch.from_numpy(np.load(targets)) * 2 - 1
    with torch.no_grad():
        again = psnr(render(trained, latents, "z"), images)
    np.testing.assert_allclose(again.numpy(), results["hybrid"]["psnr"], rtol=1e-3)
    with Image.open(tmp_path / "hybrid" / "reconstruction.png") as im:
        assert im.size == (4 * 18 + 2, 2 * 18 + 2)  # targets above, reconstructions below


def test_invert_reads_pngs_and_refuses_bad_input(runs, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "pngs"
    folder.mkdir()
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "b.png")
    capsys.readouterr()
    assert main(["invert", str(runs["dcgan"]), str(folder), "--method", "optimise", "--steps", "2",
                 "--out", str(tmp_path / "o")]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == ["a.png", "b.png"]
    dc, out = str(runs["dcgan"]), str(tmp_path / "x")
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(big / "a.png")
    assert "big/a.png': is 28x28; the generator makes 16x16 images" in error_of(["invert", dc, str(big), "--out", out],
                                                                               capsys)
    colour = tmp_path / "colour"
    colour.mkdir()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(colour / "a.png")
    assert "a colour image (mode RGB); the generator makes 1-channel" in error_of(
        ["invert", dc, str(colour), "--out", out], capsys)
    rgb = tmp_path / "rgb.npy"
    np.save(rgb, np.zeros((2, 3, 16, 16), np.float32))
    assert "images of shape [3, 16, 16] (channels, height, width); the generator makes [1, 16, 16]" in error_of(
        ["invert", dc, str(rgb), "--out", out], capsys)
    wide = tmp_path / "wide.npy"
    np.save(wide, np.full((2, 1, 16, 16), 255.0, np.float32))
    assert "expected floats in [0, 1]" in error_of(["invert", dc, str(wide), "--out", out], capsys)
    ok = tmp_path / "ok.npy"
    np.save(ok, np.zeros((2, 1, 16, 16), np.float32))
    assert "space: DCGANGenerator has no latent space 'w'" in error_of(
        ["invert", dc, str(ok), "--space", "w", "--out", out], capsys)
    assert "--save-encoder: method 'optimise' trains no encoder" in error_of(
        ["invert", dc, str(ok), "--method", "optimise", "--save-encoder", str(tmp_path / "e.safetensors"),
         "--out", out], capsys)
    assert "expected a folder of .png files or a .npy file" in error_of(["invert", dc, str(tmp_path / "no"),
                                                                        "--out", out], capsys)
    (tmp_path / "a-file").write_text("mine")  # refused before the optimisation runs, and left as it was
    assert "is a file; expected a folder for reconstruction.png" in error_of(
        ["invert", dc, str(ok), "--out", str(tmp_path / "a-file")], capsys)
    assert (tmp_path / "a-file").read_text() == "mine"


def test_outputs_default_to_the_run_directory(runs, tmp_path: Path, capsys) -> None:
    run = runs["dcgan"]
    assert main(["interpolate", str(run / "checkpoints" / "step-00000003"), "--steps", "3", "--pairs", "1"]) == 0
    assert (run / "latent" / "interpolate.png").is_file() and (run / "latent" / "interpolate.gif").is_file()
    assert main(["edit", str(run), "--param", "num_samples=40", "--param", "num_keep=10", "-n", "2"]) == 0
    assert json.loads((run / "latent" / "edit-interfacegan.json").read_text())["attribute"] == "ink"
    ok = tmp_path / "ok.npy"
    np.save(ok, np.zeros((1, 1, 16, 16), np.float32))
    assert main(["invert", str(run), str(ok), "--method", "optimise", "--steps", "1"]) == 0
    assert (run / "latent" / "invert-optimise" / "latents.safetensors.json").is_file()


def test_a_conditional_generator_is_edited_and_inverted_within_one_class(runs, tmp_path: Path, capsys) -> None:
    default = str(runs["default"])  # the embedded default: a class-conditional DCGAN
    assert main(["interpolate", default, "--out", str(tmp_path / "walk.png"), "--steps", "3", "--pairs", "2",
                 "--class", "7"]) == 0
    grid = tmp_path / "ink.png"
    edit = ["edit", default, "--editor", "interfacegan", "--attribute", "ink", "--alphas", "-3,3", "-n", "2",
            "--param", "num_samples=200", "--param", "num_keep=40", "--out", str(grid)]
    err = error_of(edit, capsys)
    assert "--class: the generator is class-conditional" in err and "K in [0, 9] (0, 1, 2" in err
    assert "(got 10)" in error_of([*edit, "--class", "10"], capsys)
    capsys.readouterr()
    assert main([*edit, "--class", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["space"] == "z"
    with Image.open(grid) as im:
        assert im.size == (2 * 18 + 2, 2 * 18 + 2)

    # Samples of class 3 are found again when inverted within class 3.
    trained = load_generator(runs["default"])
    labels = torch.full((3,), 3)
    targets = ((trained.sample(3, generator=torch.Generator().manual_seed(5), labels=labels) + 1) / 2).numpy()
    np.save(tmp_path / "threes.npy", targets)
    psnr_in = {}
    for k in (3, 5):
        capsys.readouterr()
        assert main(["invert", default, str(tmp_path / "threes.npy"), "--method", "optimise", "--steps", "60",
                     "--feature-weight", "0", "--class", str(k), "--out", str(tmp_path / f"in-{k}")]) == 0
        psnr_in[k] = json.loads(capsys.readouterr().out)["mean_psnr"]
    assert psnr_in[3] > psnr_in[5] + 1.0, psnr_in  # the images' own class explains them best
    assert "--class: the generator is class-conditional" in error_of(
        ["invert", default, str(tmp_path / "threes.npy"), "--out", str(tmp_path / "x")], capsys)
    assert "takes no class" in error_of(
        ["invert", str(runs["dcgan"]), str(tmp_path / "threes.npy"), "--class", "3", "--out", str(tmp_path / "y")],
        capsys)


PRIOR_MEAN = """
    import time
    import attrs
    import torch
    from ganforge import hookimpl

    @attrs.frozen(kw_only=True)
    class PriorMeanConfig:
        scale: float = 1.0

    class PriorMean:
        '''The prior's centre for every image (a baseline inversion).'''
        def __init__(self, config):
            self.scale = config.scale
        def invert(self, trained, images, *, space, generator_rng):
            t0 = time.perf_counter()
            z = torch.zeros(len(images), *trained.space.shape, device=images.device) * self.scale
            with torch.no_grad():
                fake = trained.module(z)
            mse = (fake - images).square().flatten(1).mean(1)
            return z, {"psnr": (10 * torch.log10(4.0 / mse)).tolist(), "seconds": time.perf_counter() - t0,
                       "steps": 0}

    @hookimpl
    def ganforge_register_inversions(register):
        register("test-prior-mean", PriorMean, PriorMeanConfig)
"""


def test_invert_accepts_a_third_party_inversion_method(runs, tmp_path: Path, capsys,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakedist import installed_plugin_manager

    targets = tmp_path / "targets.npy"
    assert main(["sample", str(runs["dcgan"]), "-n", "2", "--out", str(targets)]) == 0
    for manager in installed_plugin_manager(tmp_path / "site", monkeypatch, name="gf-prior-mean",
                                            module="gf_prior_mean", source=PRIOR_MEAN):
        assert "test-prior-mean" in manager.registries["inversion"]
        capsys.readouterr()
        assert main(["plugins"]) == 0
        assert "inversion      test-prior-mean" in capsys.readouterr().out
        assert main(["invert", str(runs["dcgan"]), str(targets), "--method", "test-prior-mean",
                     "--out", str(tmp_path / "mean")]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["method"] == "test-prior-mean" and len(result["psnr"]) == 2 and result["steps"] == 0
        assert result["settings"]["method"] == {"name": "test-prior-mean", "scale": 1.0}
        # a flag the method's config lacks is refused by name, before any work
        assert "--steps: method 'test-prior-mean' has no steps setting" in error_of(
            ["invert", str(runs["dcgan"]), str(targets), "--method", "test-prior-mean", "--steps", "3",
             "--out", str(tmp_path / "x")], capsys)
    assert "method.name: unknown inversion 'hybird'; choose one of: encoder, hybrid, optimise" in error_of(
        ["invert", str(runs["dcgan"]), str(targets), "--method", "hybird", "--out", str(tmp_path / "y")], capsys)


# -- ganforge sample --psi / --mix (NVlabs' generate.py --trunc and style_mixing.py) ------------------------------


def sample_array(run: Path, tmp_path: Path, *extra: str, seed: int = 3, n: int = 6) -> np.ndarray:
    out = tmp_path / f"s{abs(hash(extra))}.npy"
    assert main(["sample", str(run), "-n", str(n), "--seed", str(seed), "--out", str(out), *extra]) == 0
    return np.load(out)


def test_sample_psi_truncates_towards_the_average_image(runs, tmp_path: Path) -> None:
    run = runs["stylegan"]
    plain = sample_array(run, tmp_path)
    np.testing.assert_array_equal(sample_array(run, tmp_path, "--psi", "1"), plain)  # psi 1: no truncation
    trained = load_generator(run)
    z = trained.sampler.sample(6, trained.space, device="cpu", generator=torch.Generator().manual_seed(3))
    for psi in ("0.7", "-0.5"):  # the generator's own truncation (forward's psi) gives the same images
        with torch.no_grad():
            want = (trained.module(z, psi=float(psi)).clamp(-1, 1) + 1) / 2
        np.testing.assert_allclose(sample_array(run, tmp_path, "--psi", psi), want.numpy(), atol=1e-6)
    spread = {psi: float(sample_array(run, tmp_path, "--psi", psi).std(axis=0).mean()) for psi in ("1", "0.5", "0")}
    assert spread["0"] < 1e-6 < spread["0.5"] < spread["1"]  # psi 0: every sample is the average image


def test_sample_psi_modes_truncates_each_w_towards_its_nearest_k_means_centre(runs, tmp_path: Path) -> None:
    run = runs["stylegan"]
    trained = load_generator(run)
    g = trained.module
    z = trained.sampler.sample(6, trained.space, device="cpu", generator=torch.Generator().manual_seed(3))
    modes = trained.truncation_modes(4)
    torch.testing.assert_close(trained.truncation_modes(4), modes)  # the checkpoint's modes, not the seed's
    with torch.no_grad():
        w = g.mapping(z)
        centre = modes[torch.cdist(w, modes).argmin(1)]
        for psi in ("0.5", "0"):  # c + psi (w - c), by hand
            want = (g.synthesis(centre.lerp(w, float(psi))[:, None].expand(-1, g.num_ws, -1)).clamp(-1, 1) + 1) / 2
            np.testing.assert_allclose(sample_array(run, tmp_path, "--psi", psi, "--psi-modes", "4"), want.numpy(),
                                       atol=1e-5)
    # psi 0 gives one image per mode in use, not the single average image of plain truncation
    distinct = np.unique(sample_array(run, tmp_path, "--psi", "0", "--psi-modes", "4").round(4), axis=0)
    assert len(distinct) == len(torch.unique(centre, dim=0)) > 1
    # one mode is the mean of 10,000 w: plain truncation towards (nearly) the same point as w_avg
    one = trained.truncation_modes(1)
    with torch.no_grad():
        z10k = trained.sampler.sample(10_000, trained.space, device="cpu", generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(one[0], g.mapping(z10k).mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(sample_array(run, tmp_path, "--psi", "1", "--psi-modes", "4"),
                                  sample_array(run, tmp_path))  # psi 1: no truncation, whatever the modes


def test_sample_mix_takes_the_second_seeds_styles_at_the_layers(runs, tmp_path: Path) -> None:
    run = runs["stylegan"]
    a, b = sample_array(run, tmp_path, seed=3), sample_array(run, tmp_path, seed=11)
    np.testing.assert_array_equal(sample_array(run, tmp_path, "--mix", "11", "--mix-layers", "all"), b)
    np.testing.assert_array_equal(sample_array(run, tmp_path, "--mix", "3", "--mix-layers", "coarse"), a)
    trained = load_generator(run)
    g = trained.module
    za = trained.sampler.sample(6, trained.space, device="cpu", generator=torch.Generator().manual_seed(3))
    zb = trained.sampler.sample(6, trained.space, device="cpu", generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        wa, wb = g.mapping(za), g.mapping(zb)
        for layers, idx in (("coarse", g.layer_ranges["coarse"]), ("1:3", range(1, 3))):
            ws = wa[:, None].repeat(1, g.num_ws, 1)
            ws[:, idx.start:idx.stop] = wb[:, None]
            want = (g.synthesis(ws).clamp(-1, 1) + 1) / 2
            got = sample_array(run, tmp_path, "--mix", "11", "--mix-layers", layers)
            np.testing.assert_allclose(got, want.numpy(), atol=1e-6)
            assert np.abs(got - a).max() > 1e-3 and np.abs(got - b).max() > 1e-3


def test_sample_psi_and_mix_refuse_what_they_cannot_do(runs, tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "x.png")
    err = error_of(["sample", str(runs["dcgan"]), "--psi", "0.7", "--out", out], capsys)
    assert "--psi: generator 'dcgan' has no W space with a tracked average" in err
    err = error_of(["sample", str(runs["dcgan"]), "--mix", "1", "--out", out], capsys)
    assert "--mix: generator 'dcgan' has no W space" in err
    err = error_of(["sample", str(runs["stylegan"]), "--psi", "7", "--out", out], capsys)
    assert "truncation psi must be a number in" in err and "got 7.0" in err
    err = error_of(["sample", str(runs["stylegan"]), "--mix-layers", "fine", "--out", out], capsys)
    assert "--mix-layers 'fine': takes effect with --mix SEED" in err
    err = error_of(["sample", str(runs["stylegan"]), "--mix", "1", "--mix-layers", "5:2", "--out", out], capsys)
    assert "--mix-layers: '5:2' is not a non-empty range" in err
    err = error_of(["sample", str(runs["stylegan"]), "--mix", "1", "--mix-layers", "eyes", "--out", out], capsys)
    assert "--mix-layers: must be one of ['all', 'coarse', 'fine', 'middle'] or 'start:stop'" in err
    err = error_of(["sample", str(runs["stylegan"]), "--psi-modes", "10", "--out", out], capsys)
    assert "--psi-modes 10: takes effect with --psi" in err
    err = error_of(["sample", str(runs["stylegan"]), "--psi", "0.5", "--psi-modes", "0", "--out", out], capsys)
    assert "--psi-modes: expected a number of modes in [1, 10000], got 0" in err
    err = error_of(["sample", str(runs["dcgan"]), "--psi", "0.5", "--psi-modes", "3", "--out", out], capsys)
    assert "--psi: generator 'dcgan' has no W space with a tracked average" in err
    # interpolate's --psi as sample's, never silently ignored
    err = error_of(["interpolate", str(runs["dcgan"]), "--psi", "0.5", "--out", out], capsys)
    assert "--psi: generator 'dcgan' has no W space with a tracked average" in err
    err = error_of(["interpolate", str(runs["stylegan"]), "--psi", "0.5", "--out", out], capsys)
    assert "--psi 0.5: truncation applies to w, and --space z interpolates untruncated z" in err
    assert not (tmp_path / "x.png").exists()
    assert main(["interpolate", str(runs["stylegan"]), "--psi", "0.5", "--space", "w", "--steps", "2", "--pairs",
                 "1", "--out", out]) == 0
