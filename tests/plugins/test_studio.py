"""``ganforge studio``: its engine and its HTTP app on tiny trained runs, checked against the commands
the page must agree with (``edit``, ``interpolate``), and its answers to bad input."""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ganforge import ConfigError, DataError, get_plugin_manager, load_generator
from ganforge.cli import main
from PIL import Image

from tests.conftest import TINY, sets
from tests.conftest import TINY_STYLEGAN as STYLEGAN

pytest.importorskip("starlette", reason="the studio's extra (starlette, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the studio's extra (starlette, uvicorn) is not installed")

from ganforge_plugins.studio.command import Served
from ganforge_plugins.studio.engine import (
    MAX_UPLOAD_BYTES,
    GridRequest,
    InterpolationRequest,
    Mix,
    SliderValue,
    State,
    StripRequest,
    Studio,
    parse,
)

INK = "interfacegan:ink@w"

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("studio")
    (base / "stylegan.toml").write_text(STYLEGAN)
    style = [s for s in TINY if not s.startswith(("generator.", "discriminator."))]
    assert main(["train", str(base / "stylegan.toml"), "--out", str(base / "stylegan"), *sets(style)]) == 0
    assert main(["train", "--out", str(base / "default"), *sets(TINY)]) == 0  # the class-conditional default
    return {"stylegan": base / "stylegan", "default": base / "default"}


@pytest.fixture(scope="module")
def studio(runs: dict[str, Path]) -> Any:
    s = Studio(load_generator(runs["stylegan"]), get_plugin_manager())
    job, _ = s.fit(INK, None)
    assert s.jobs.wait(job["id"], 120)["status"] == "done"
    yield s
    s.close()


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def gif_frames(data: bytes) -> list[np.ndarray]:
    frames = []
    with Image.open(io.BytesIO(data)) as im:
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    return frames


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("ganforge: error: ") and "Traceback" not in err
    return err


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` grey pixels (its data is one empty row)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# -- the page and the commands agree ---------------------------------------------------------------


def test_current_image_and_edit_strip_are_the_edit_commands(runs, studio, tmp_path: Path, capsys) -> None:
    direction = studio.direction_file(INK, None)
    assert direction.is_file() and (direction.parent / (direction.name + ".json")).is_file()
    state = State(seed=5, edits=(SliderValue(slider=INK, alpha=2.0),))
    image, space, _ = studio.image(state)
    assert space == "w"
    from ganforge import png_bytes

    out = tmp_path / "edit.png"
    run_cli(["edit", str(runs["stylegan"]), "--editor", "interfacegan", "--attribute", "ink", "--space", "w",
             "--direction", str(direction), "--seed", "5", "-n", "1", "--alphas", "2", "--out", str(out)], capsys)
    single = pixels(out.read_bytes())
    np.testing.assert_array_equal(pixels(png_bytes(image, nrow=1)), single)

    strip = studio.strip(StripRequest(state=State(seed=5), slider=INK, alphas=(-2.0, 0.0, 2.0)))
    run_cli(["edit", str(runs["stylegan"]), "--editor", "interfacegan", "--attribute", "ink", "--space", "w",
             "--direction", str(direction), "--seed", "5", "-n", "1", "--alphas", "-2,0,2", "--out", str(out)],
            capsys)
    np.testing.assert_array_equal(pixels(strip), pixels(out.read_bytes()))
    # and the check can fail: another seed is another picture of the same size
    other, _, _ = studio.image(attrs_evolve(state, seed=6))
    assert pixels(png_bytes(other, nrow=1)).shape == single.shape
    assert not np.array_equal(pixels(png_bytes(other, nrow=1)), single)


def attrs_evolve(state: State, **changes: Any) -> State:
    import attrs

    return attrs.evolve(state, **changes)


def test_interpolation_is_the_interpolate_command(runs, studio, tmp_path: Path, capsys) -> None:
    request = InterpolationRequest(a=State(seed=3), b=State(seed=8), steps=5, mode="slerp", space="w")
    strip, gif, notes = studio.interpolation(request)
    assert notes == []
    out = tmp_path / "i.png"
    run_cli(["interpolate", str(runs["stylegan"]), "--seeds", "3,8", "--steps", "5", "--space", "w",
             "--out", str(out)], capsys)
    np.testing.assert_array_equal(pixels(strip), pixels(out.read_bytes()))
    ours, theirs = gif_frames(gif), gif_frames((tmp_path / "i.gif").read_bytes())
    assert len(ours) == len(theirs) == 8  # 5 forth, 3 back
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(ours[0], ours[4])  # the ends differ: the strip is not one image
    from ganforge_plugins.latent.commands import parse_seeds

    with pytest.raises(ConfigError, match="--seeds '3'"):
        parse_seeds("3")


def test_exported_latent_is_edited_by_the_command_line(runs, studio, tmp_path: Path, capsys) -> None:
    state = State(seed=4, psi=0.7, edits=(SliderValue(slider=INK, alpha=1.5),))
    data, side, path = studio.export_latent(state)
    assert np.load(io.BytesIO(data)).shape == (1, 8) and path.is_file()
    assert json.loads(side)["space"] == "w" and json.loads(side)["generator"]["fingerprint"]
    image, _, _ = studio.image(state)
    out = tmp_path / "again.png"
    run_cli(["edit", str(runs["stylegan"]), "--editor", "interfacegan", "--attribute", "ink", "--space", "w",
             "--direction", str(studio.direction_file(INK, None)), "--latents", str(path), "--alphas", "0",
             "--out", str(out)], capsys)
    from ganforge import png_bytes

    np.testing.assert_array_equal(pixels(png_bytes(image, nrow=1)), pixels(out.read_bytes()))
    err = cli_error(["edit", str(runs["default"]), "--class", "0", "--latents", str(path), "--out",
                     str(tmp_path / "x.png")], capsys)
    assert "belongs to another generator" in err


# -- what the sliders and toggles do ---------------------------------------------------------------


def score(studio: Studio, state: State, attribute: str) -> float:
    image, _, _ = studio.image(state)
    return next(s["value"] for s in studio.scores(image) if s["attribute"] == attribute)


def test_a_slider_moves_its_attribute_and_mixing_and_psi_change_the_image(studio) -> None:
    base = State(seed=11)
    inks = [score(studio, attrs_evolve(base, edits=(SliderValue(slider=INK, alpha=a),)), "ink")
            for a in (-3.0, 0.0, 3.0)]
    assert inks[0] < inks[1] < inks[2]
    plain, _, _ = studio.image(base)
    mixed, space, _ = studio.image(attrs_evolve(base, mix=Mix(seed=12, layers=("coarse",))))
    assert space == "w+" and not torch.equal(plain, mixed)
    truncated, space, _ = studio.image(attrs_evolve(base, psi=0.0))
    average, _, _ = studio.image(attrs_evolve(base, seed=99, psi=0.0))
    assert space == "w" and torch.allclose(truncated, average, atol=1e-5)  # psi 0: every seed is the average
    assert not torch.equal(truncated, plain)


def test_ganspace_components_have_their_variance_and_edit_w_plus(studio) -> None:
    job, _ = studio.fit("ganspace:coarse", None)
    done = studio.jobs.wait(job["id"], 60)
    assert done["status"] == "done", done
    sliders = done["result"]["sliders"]
    assert len(sliders) == 8 and sliders[0]["space"] == "w+"  # min(10 components asked, w_dim 8)
    ratios = [s["variance"] for s in sliders]
    assert ratios == sorted(ratios, reverse=True) and 0 < sum(ratios) <= 1.0 + 1e-6
    moved, space, _ = studio.image(State(seed=2, edits=(SliderValue(slider="ganspace:coarse#0", alpha=3.0),)))
    assert space == "w+" and not torch.equal(moved, studio.image(State(seed=2))[0])
    with pytest.raises(ConfigError, match=r"component '8' is not one of 0\.\.7"):
        studio.image(State(seed=2, edits=(SliderValue(slider="ganspace:coarse#8", alpha=1.0),)))


def test_an_unfitted_or_unknown_slider_is_named(studio) -> None:
    with pytest.raises(ConfigError, match="not fitted yet"):
        studio.image(State(edits=(SliderValue(slider="interfacegan:slant@w", alpha=1.0),)))
    with pytest.raises(ConfigError, match="no such direction"):
        studio.image(State(edits=(SliderValue(slider="nope", alpha=1.0),)))
    with pytest.raises(ConfigError, match="psi"):
        parse(State, {"psi": "high"}, "state")


# -- uploads and inversion --------------------------------------------------------------------------


def test_uploads_are_checked_and_fitted_to_the_generator(studio, runs) -> None:
    with pytest.raises(DataError, match=r"upload 'notes\.txt'.*not an image"):
        studio.read_upload(b"this is not a picture", "notes.txt")
    with pytest.raises(DataError, match="empty"):
        studio.read_upload(b"", "empty.png")
    with pytest.raises(DataError, match=r"upload 'bomb.png': more than the 16,777,216 pixels .*decompression bomb"):
        studio.read_upload(png_with_header(20000, 20000), "bomb.png")  # refused by Pillow's own check, at open
    with pytest.raises(DataError, match=r"5000x5000 is 25,000,000 pixels, more than the 16,777,216"):
        studio.read_upload(png_with_header(5000, 5000), "large.png")  # refused by ours, from the header
    with pytest.raises(DataError, match="more than the"):
        studio.read_upload(b"\0" * (MAX_UPLOAD_BYTES + 1), "big.png")
    digit = np.zeros((12, 12), np.uint8)
    digit[3:9, 5:7] = 255
    x, notes = studio.read_upload(png(digit), "one.png")
    assert x.shape == (1, 16, 16) and float(x.max()) == 1.0 and float(x.min()) == -1.0
    assert any("from 12x12 to 16x16" in n for n in notes)
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[..., 0] = 200
    _, notes = studio.read_upload(png(colour), "red.png")
    assert "a colour image, read as grey" in notes


def test_an_inverted_upload_has_its_psnr_and_can_be_edited(studio) -> None:
    target, _, _ = studio.image(State(seed=21))
    upload = png(((target[0, 0].numpy() + 1) * 127.5).round().astype(np.uint8))
    job = studio.invert(upload, "g.png", method="optimise", steps=150, class_index=None)
    done = studio.jobs.wait(job["id"], 120)
    assert done["status"] == "done", done
    result = done["result"]
    assert result["space"] == "w+" and result["psnr"] > 12.0
    assert result["reconstruction"].startswith("data:image/png;base64,")
    edited, space, notes = studio.image(State(latent=result["latent"], edits=(SliderValue(slider=INK, alpha=3.0),)))
    assert space == "w+" and notes == []
    assert not torch.equal(edited, studio.image(State(latent=result["latent"]))[0])  # the w direction moved W+
    with pytest.raises(ConfigError, match="no latent 'latent-missing'"):
        studio.image(State(latent="latent-missing"))


# -- the HTTP app ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(studio) -> Any:
    server = Served(studio)
    yield server
    server.server.should_exit = True
    server.thread.join(timeout=10)
    server.sock.close()


def post(url: str, body: Any, *, raw: bytes | None = None) -> tuple[int, bytes, dict[str, str]]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_page_and_its_assets_are_served_offline(served) -> None:
    status, page = get(served.url + "/")
    assert status == 200 and b"ganforge studio" in page
    for asset in (b"/static/studio.js", b"/static/studio.css"):
        assert asset in page and get(served.url + asset.decode())[0] == 200
    assert b"http://" not in page and b"https://" not in page  # nothing from another host
    status, body = get(served.url + "/api/info")
    info = json.loads(body)
    assert status == 200 and info["style"] and "w+" in info["spaces"] and info["classes"] is None
    assert {"optimise", "encoder", "hybrid"} <= set(info["inversion_methods"])
    keys = {d["key"] for d in info["directions"]}
    assert {INK, "ganspace:all", "latent-transformer:slant@w", "interfacegan:mnist-digit:3@w"} <= keys


def test_bad_requests_get_a_sentence_naming_the_field(served) -> None:
    status, body, _ = post(served.url + "/api/render", {"state": {"seed": 1, "psi": "high"}})
    assert status == 400 and "psi" in json.loads(body)["error"]
    status, body, _ = post(served.url + "/api/render", None, raw=b"{not json")
    assert status == 400 and "not JSON" in json.loads(body)["error"]
    status, body, _ = post(served.url + "/api/render", {"state": {"edits": [{"slider": "nope", "alpha": 1}]}})
    assert status == 400 and "no such direction" in json.loads(body)["error"]
    status, body = get(served.url + "/api/jobs/job-404")
    assert status == 404 and "no job" in json.loads(body)["error"]
    status, body, _ = post(served.url + "/api/invert?name=a.txt&method=optimise", None, raw=b"hello")
    assert status == 400 and "not an image" in json.loads(body)["error"]
    status, body, _ = post(served.url + "/api/invert?name=b.png", None, raw=png_with_header(20000, 20000))
    assert status == 400 and "decompression bomb" in json.loads(body)["error"]
    status, body, _ = post(served.url + "/api/invert?name=c.png", None, raw=b"\0" * (MAX_UPLOAD_BYTES + 10))
    assert status == 413 and "more than the" in json.loads(body)["error"]
    status, body, _ = post(served.url + "/api/invert?name=d.png&method=nope", None, raw=png(np.zeros((16, 16),
                                                                                                  np.uint8)))
    assert status == 400 and "nope" in json.loads(body)["error"]
    status, body = get(served.url + "/api/exports/..%2F..%2Fconfig.toml")
    assert status == 404
    # values past what the engine takes are a 400 naming them, not a 500 from inside torch
    for path, request, field in (
            ("/api/grid", {"seed": 2**64}, "seed"),
            ("/api/render", {"state": {"seed": 2**63}}, "seed"),
            ("/api/render", {"state": {"mix": {"seed": 2**64}}}, "seed"),
            ("/api/export/strip", {"state": {}, "slider": "ganspace:all#0", "alphas": [25]}, "alphas"),
            ("/api/fit", {"key": "interfacegan:ink@w", "class_index": True}, "class_index")):
        status, body, _ = post(served.url + path, request)
        assert status == 400 and field in json.loads(body)["error"], (path, body)
    status, body, _ = post(served.url + "/api/render", {"state": {"seed": 2**63 - 1}})
    assert status == 200  # the largest seed torch takes
    status, body = get(served.url + "/api/directions?class_index=--3")
    assert status == 400 and "class_index" in json.loads(body)["error"]
    digit = png(np.zeros((16, 16), np.uint8))
    for steps in ("99999999999999999999999", "0", "100001"):  # the one worker may not be held for days
        status, body, _ = post(served.url + f"/api/invert?name=e.png&method=optimise&steps={steps}", None, raw=digit)
        assert status == 400 and "steps: expected a whole number of steps in [1, 100000]" in json.loads(body)["error"]


def test_two_tabs_at_once_each_get_their_own_image(served, studio) -> None:
    states = {tab: {"seed": 30 + tab, "psi": 1.0 if tab % 2 else 0.6,
                    "edits": [{"slider": INK, "alpha": float(tab - 2)}]} for tab in range(4)}
    expected = {tab: json.loads(post(served.url + "/api/render", {"state": s})[1])["image"]
                for tab, s in states.items()}
    assert len(set(expected.values())) == 4
    wrong: list[str] = []

    def tab(i: int) -> None:
        for n in range(6):
            status, body, _ = post(served.url + "/api/render", {"state": states[i], "request": n})
            out = json.loads(body)
            if status != 200 or out["image"] != expected[i] or out["request"] != n:
                wrong.append(f"tab {i} request {n}: {status}")

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_two_tabs_fitting_one_direction_share_the_job(served) -> None:
    results: list[dict[str, Any]] = []

    def fit() -> None:
        results.append(json.loads(post(served.url + "/api/fit", {"key": "vector-arithmetic:slant@w",
                                                                 "class_index": None})[1]))

    threads = [threading.Thread(target=fit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r["job"]["id"] for r in results}) == 1, results
    joined = [r for r in results if r["joined"]]
    assert len(joined) == 1 and "already being fitted (asked by another tab)" in joined[0]["job"]["message"]


def test_downloads_are_files(served, studio) -> None:
    state = {"seed": 5, "edits": [{"slider": INK, "alpha": 2.0}]}
    status, body, headers = post(served.url + "/api/export/image", state)
    assert status == 200 and headers["content-type"] == "image/png" and "attachment" in headers["content-disposition"]
    image, _, _ = studio.image(State(seed=5, edits=(SliderValue(slider=INK, alpha=2.0),)))
    from ganforge import png_bytes

    np.testing.assert_array_equal(pixels(body), pixels(png_bytes(image, nrow=1)))
    status, body, headers = post(served.url + "/api/export/latent", state)
    saved = Path(headers["x-ganforge-saved"])
    assert status == 200 and saved.is_file() and np.load(io.BytesIO(body)).shape == (1, 8)
    status, side = get(served.url + f"/api/exports/{saved.name}.json")
    assert status == 200 and json.loads(side)["kind"] == "latent"
    request = {"a": {"seed": 1}, "b": {"seed": 2}, "steps": 4}
    status, body, headers = post(served.url + "/api/interpolation?format=gif", request)
    assert status == 200 and headers["content-type"] == "image/gif" and len(gif_frames(body)) == 6
    status, body, headers = post(served.url + "/api/interpolation?format=png", request)
    assert status == 200 and headers["content-type"] == "image/png"
    status, body, headers = post(served.url + "/api/interpolation?format=xyz", request)
    assert status == 400 and json.loads(body)["error"] == "format: expected one of json, png, gif, got 'xyz'"


# -- the command ----------------------------------------------------------------------------------


def test_studio_command_errors(runs, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    err = cli_error(["studio", str(tmp_path / "empty")], capsys)
    assert "empty" in err and "checkpoint" in err
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        err = cli_error(["studio", str(runs["stylegan"]), "--port", str(port)], capsys)
        assert f"--port {port}: 127.0.0.1:{port} is in use" in err and "--port 0" in err
    finally:
        busy.close()
    assert "'port' must be <= 65535: 70000" in cli_error(["studio", str(runs["stylegan"]), "--port", "70000"], capsys)


def test_a_conditional_run_edits_within_a_class(runs) -> None:
    s = Studio(load_generator(runs["default"]), get_plugin_manager())
    try:
        info = s.info()
        assert info["classes"] == [str(i) for i in range(10)] and not info["style"]
        assert len(s.grid(GridRequest(seed=0, count=4, class_index=3))) == 4
        a, _, _ = s.image(State(seed=1, class_index=3))
        b, _, _ = s.image(State(seed=1, class_index=4))
        assert not torch.equal(a, b)
        with pytest.raises(ConfigError, match="class-conditional"):
            s.image(State(seed=1))
        with pytest.raises(ConfigError, match="style-based generator"):
            s.image(State(seed=1, class_index=3, psi=0.5))
    finally:
        s.close()


def test_latent_arrays_are_bound_to_their_generator_and_space(runs, tmp_path: Path) -> None:
    from ganforge_plugins.latent.spaces import load_latent_array, save_latent_array

    trained = load_generator(runs["stylegan"])
    w = torch.randn(3, 8)
    path = save_latent_array(tmp_path / "w.npy", w, generator=trained, space="w", meta={"class": None})
    back, meta = load_latent_array(path, generator=trained)
    assert torch.equal(back, w) and meta["space"] == "w"
    with pytest.raises(ConfigError, match=r"written as \.npy"):
        save_latent_array(tmp_path / "w.safetensors", w, generator=trained, space="w")
    np.save(tmp_path / "w.npy", np.zeros((3, 5), np.float32))  # the side file now lies about the array
    with pytest.raises(ConfigError, match=r"latents in 'w' of this generator are \[N, 8\]"):
        load_latent_array(path, generator=trained)
    (tmp_path / "w.npy.json").unlink()
    with pytest.raises(ConfigError, match=r"side file 'w\.npy\.json' must both exist"):
        load_latent_array(path, generator=trained)
    other = load_generator(runs["default"])
    path = save_latent_array(tmp_path / "z.npy", torch.randn(1, 16), generator=other, space="z")
    with pytest.raises(ConfigError, match="belongs to another generator"):
        load_latent_array(path, generator=trained)
