"""The README's command lines run as written (run-safety issue, item 13): every `ganforge` line of its
"Use" block that works on a GAN run is run on a run of the embedded default (a conditional DCGAN on
the digits, made with fewer steps), with `runs/mine`, `my.toml`, `new.toml` and `images/` standing
for that run, a small recipe and a folder of its samples, and `runs/style` for a tiny StyleGAN run (the
lines that need a W space). The lines left out are named, with the test that covers them."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY_STYLEGAN

# lines covered elsewhere: the full default job (tests/test_default_run.py), real-data recipes and
# metrics (benchmarks, tests/plugins/test_metrics_*), the lab (tests/plugins/test_lab.py), translation
# (tests/plugins/test_procedures_translation.py), DDP (tests/core/test_distributed.py) and the studio,
# a server (tests/plugins/test_studio.py and test_studio_browser.py)
ELSEWHERE = ("ganforge train configs/", "ganforge eval", "ganforge lab", "ganforge translate",
             "torchrun", "ganforge studio")
TINY = ["train.steps=30", "train.batch_size=32", "output.progress=false", "output.sample_every=30",
        "output.checkpoint_every=30"]


def use_block() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("## Use", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_use_block_is_found_and_the_left_out_lines_are_the_named_ones() -> None:
    lines = use_block()
    assert len(lines) >= 15 and all(line.startswith(("ganforge", "torchrun")) for line in lines)
    assert sum(line.startswith(ELSEWHERE) or line == "ganforge train" for line in lines) <= 10


@pytest.mark.slow  # a small default run and a tiny StyleGAN, then every line: about 2.5 minutes on 2 cores
def test_every_readme_command_line_runs_as_written(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    def ganforge(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True, text=True,
                              env=subprocess_env, cwd=tmp_path, timeout=900)

    made = ganforge("train", "--out", "runs/mine", *[a for s in TINY for a in ("--set", s)])
    assert made.returncode == 0, made.stderr
    (tmp_path / "style.toml").write_text(TINY_STYLEGAN)
    made = ganforge("train", "style.toml", "--out", "runs/style", *[a for s in TINY for a in ("--set", s)])
    assert made.returncode == 0, made.stderr
    from ganforge.config import dump_toml, merge, parse_override

    recipe: dict[str, object] = {}
    for item in TINY:
        recipe = merge(recipe, parse_override(item))
    (tmp_path / "my.toml").write_text(dump_toml(recipe))
    (tmp_path / "new.toml").write_text(dump_toml(recipe))
    images = ganforge("sample", "runs/mine", "-n", "2", "--class", "3", "--out", "two.npy")
    assert images.returncode == 0, images.stderr
    import numpy as np
    from PIL import Image

    (tmp_path / "images").mkdir()
    for i, array in enumerate(np.load(tmp_path / "two.npy")):
        Image.fromarray((array[0] * 255).round().astype(np.uint8)).save(tmp_path / "images" / f"{i}.png")
    ran = []
    for line in use_block():
        if line.startswith(ELSEWHERE) or line == "ganforge train":
            continue
        argv = shlex.split(re.sub(r"\s\[.*?\]", "", line))[1:]
        if argv[:2] == ["train", "my.toml"] and "--out" in argv:
            argv[argv.index("--out") + 1] = "runs/mine-2"  # the run the README's line makes, beside ours
        result = ganforge(*argv)
        assert result.returncode == 0, f"{line}\n{result.stderr[-2000:]}"
        assert "Traceback" not in result.stderr, line
        ran.append(argv[0])
    assert {"sample", "edit", "invert", "interpolate", "report", "config", "plugins"} <= set(ran)
