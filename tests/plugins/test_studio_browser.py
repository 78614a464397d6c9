"""``ganforge studio`` end to end in a real headless browser (Debian's chromium through Selenium): pick
a sample, fit and move a direction, toggle style mixing, upload a real MNIST digit, download a PNG
and a GIF and compare their pixels with ``ganforge edit`` and ``ganforge interpolate``."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ganforge import get_plugin_manager, load_generator
from ganforge.cli import main
from PIL import Image

from tests.browser import chromium, click, find_chromium, wait_for, wait_for_file
from tests.conftest import TINY, sets
from tests.conftest import TINY_STYLEGAN as STYLEGAN

pytest.importorskip("starlette", reason="the studio's extra (starlette, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the studio's extra (starlette, uvicorn) is not installed")

from ganforge_plugins.studio.command import Served
from ganforge_plugins.studio.engine import Studio

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

INK = "interfacegan:ink@w"


@pytest.fixture(scope="module")
def browser_paths() -> tuple[str, str]:
    found = find_chromium()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.fixture(scope="module")
def page(browser_paths, tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("studio-browser")
    (base / "stylegan.toml").write_text(STYLEGAN)
    style = [s for s in TINY if not s.startswith(("generator.", "discriminator."))]
    assert main(["train", str(base / "stylegan.toml"), "--out", str(base / "run"), *sets(style)]) == 0
    studio = Studio(load_generator(base / "run"), get_plugin_manager())
    served = Served(studio)
    downloads = base / "downloads"
    downloads.mkdir()
    try:
        with chromium(downloads) as driver:
            driver.get(served.url + "/")
            # the first render and the grid are two requests; the page is ready when both are on it
            wait_for(driver, "return window.studio && window.studio.renders >= 1 && "
                             "document.querySelectorAll('#grid .thumb').length === 16")
            yield {"driver": driver, "run": base / "run", "downloads": downloads, "studio": studio, "url": served.url}
    finally:
        served.stop()



def screenshot(driver: Any, name: str) -> None:
    folder = os.environ.get("GANFORGE_STUDIO_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def renders(driver: Any) -> int:
    return int(driver.execute_script("return window.studio.renders"))


def after_render(driver: Any, before: int, timeout: float = 30.0) -> dict[str, Any]:
    """The page's state once a render newer than ``before`` is on the page (and no other is pending)."""
    wait_for(driver, "return window.studio.renders > arguments[0]", timeout, before)
    return driver.execute_script("return {src: document.querySelector('#current').src, "
                                 "last: window.studio.last, error: document.querySelector('#message').textContent}")


def ink(state: dict[str, Any]) -> float:
    return next(s["value"] for s in state["last"]["scores"] if s["attribute"] == "ink")


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def frames(path: Path) -> list[np.ndarray]:
    out = []
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            out.append(np.asarray(im.convert("RGB")))
    return out


def test_explore_edit_mix_and_download(page, tmp_path: Path, capsys) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, downloads = page["driver"], page["downloads"]
    screenshot(driver, "explore")
    # pick a sample from the grid
    before = renders(driver)
    click(driver, '.thumb[data-seed="7"]')
    picked = after_render(driver, before)
    assert picked["last"]["state"]["seed"] == 7 and picked["error"] == ""
    # fit a direction, then move its slider both ways with the keyboard
    click(driver, '.tab[data-tab="edit"]')
    click(driver, '[data-editor="interfacegan"] summary')
    click(driver, f'button[data-fit="{INK}"]')
    wait_for(driver, "return document.querySelector(arguments[0])", 120, f'input[data-slider="{INK}"]')
    slider = driver.find_element(By.CSS_SELECTOR, f'input[data-slider="{INK}"]')
    before = renders(driver)
    slider.send_keys(Keys.END)  # alpha 3
    more = after_render(driver, before)
    wait_for(driver, "return window.studio.last.state.edits.length === 1 && "
                     "window.studio.last.state.edits[0].alpha === 3")
    more = after_render(driver, renders(driver) - 1)
    assert more["src"] != picked["src"] and ink(more) > ink(picked)
    screenshot(driver, "edit")
    before = renders(driver)
    slider.send_keys(Keys.HOME)  # alpha -3
    wait_for(driver, "return window.studio.last.state.edits.length === 1 && "
                     "window.studio.last.state.edits[0].alpha === -3")
    less = after_render(driver, renders(driver) - 1)
    assert ink(less) < ink(picked) < ink(more)
    # download the current image (seed 7, alpha -3) and compare it with `ganforge edit`
    click(driver, "#export-png")
    downloaded = wait_for_file(downloads, "seed-7*.png")
    out = tmp_path / "edit.png"
    direction = page["studio"].direction_file(INK, None)
    capsys.readouterr()
    assert main(["edit", str(page["run"]), "--editor", "interfacegan", "--attribute", "ink", "--space", "w",
                 "--direction", str(direction), "--seed", "7", "-n", "1", "--alphas", "-3", "--out", str(out)]) == 0
    np.testing.assert_array_equal(pixels(downloaded.read_bytes()), pixels(out.read_bytes()))
    # style mixing on and off
    click(driver, '.tab[data-tab="explore"]')
    before = renders(driver)
    click(driver, "#mix-enabled")
    mixed = after_render(driver, before)
    assert mixed["last"]["space"] == "w+" and mixed["src"] != less["src"]
    before = renders(driver)
    click(driver, "#mix-enabled")
    assert after_render(driver, before)["src"] == less["src"]


def test_interpolate_and_download_the_gif(page, tmp_path: Path, capsys) -> None:
    driver, downloads = page["driver"], page["downloads"]
    click(driver, '.tab[data-tab="edit"]')
    click(driver, "#reset-sliders")
    click(driver, '.tab[data-tab="explore"]')
    for seed, end in ((3, "a"), (8, "b")):
        before = renders(driver)
        click(driver, f'.thumb[data-seed="{seed}"]')
        after_render(driver, before)
        click(driver, '.tab[data-tab="interpolate"]')
        click(driver, f"#interp-{end}")
        click(driver, '.tab[data-tab="explore"]')
    click(driver, '.tab[data-tab="interpolate"]')
    click(driver, "#interp-run")
    wait_for(driver, "return !document.querySelector('#interp-gif').hidden && "
                     "document.querySelector('#interp-gif').complete")
    screenshot(driver, "interpolate")
    click(driver, "#interp-gif-download")
    gif = wait_for_file(downloads, "interpolation*.gif")
    out = tmp_path / "i.png"
    capsys.readouterr()
    assert main(["interpolate", str(page["run"]), "--seeds", "3,8", "--steps", "8", "--space", "z",
                 "--mode", "slerp", "--out", str(out)]) == 0
    ours, theirs = frames(gif), frames(tmp_path / "i.gif")
    assert len(ours) == len(theirs) == 14
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


def write_mnist_digit(root: Path, path: Path) -> int:
    """The first MNIST test digit as a 28x28 grey PNG; returns its label."""
    with gzip.open(root / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(root / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    Image.fromarray(images[0]).save(path)
    return int(labels[0])


def test_upload_a_real_digit_and_edit_its_inversion(page, mnist_root: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = page["driver"]
    digit = tmp_path / "mnist-test-0.png"
    write_mnist_digit(mnist_root, digit)
    click(driver, '.tab[data-tab="invert"]')
    driver.find_element(By.CSS_SELECTOR, "#upload").send_keys(str(digit))
    Select(driver.find_element(By.CSS_SELECTOR, "#invert-method")).select_by_value("optimise")
    driver.find_element(By.CSS_SELECTOR, "#invert-steps").send_keys("100")
    click(driver, "#invert-run")
    wait_for(driver, "return document.querySelector('#invert-results .result')", 120)
    psnr = float(driver.find_element(By.CSS_SELECTOR, "#invert-results .result .psnr").text)
    assert psnr > 8.0  # a tiny generator trained 3 steps: the number is shown, not a quality claim
    notes = driver.find_element(By.CSS_SELECTOR, "#invert-results .result").text
    assert "mnist-test-0.png" in notes and "28x28 to 16x16" in notes
    screenshot(driver, "invert")
    before = renders(driver)
    click(driver, "#invert-results .result button")
    edited = after_render(driver, before)
    assert edited["last"]["state"]["latent"].startswith("latent-") and edited["last"]["space"] == "w+"
    # and a file that is not an image gets a sentence, not a traceback
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    click(driver, '.tab[data-tab="invert"]')
    driver.find_element(By.CSS_SELECTOR, "#upload").send_keys(str(bad))
    click(driver, "#invert-run")
    wait_for(driver, "return document.querySelector('#message').textContent.includes('not an image')", 30)
