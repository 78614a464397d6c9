"""The lab's picture: one scatter panel per combination (rows) and dataset (columns).

Each panel shows one run's generated samples (blue dots) over the true mode centres (red circles of
radius ``radius * sigma``, the high-quality region), with the run's modes covered and fraction of
high-quality samples in the caption. Drawn with Pillow alone (no plotting library) and written
atomically.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ganforge import write_output
from PIL import Image, ImageDraw, ImageFont

PANEL = 256  # plot area, pixels per side
CAPTION = 30  # caption strip above each plot
MARGIN = 6


def panel_extent(centres: Sequence[Sequence[float]]) -> float:
    """Half-width of the square shown: the centres plus a border of a third of their span (at least 1)."""
    reach = max(max(abs(c[0]), abs(c[1])) for c in centres)
    return reach + max(1.0, reach / 3.0)


def to_pixels(x: float, y: float, extent: float, size: int = PANEL) -> tuple[float, float]:
    """Data coordinates in ``[-extent, extent]^2`` to pixel coordinates (y up)."""
    return (x / extent + 1.0) / 2.0 * (size - 1), (1.0 - (y / extent + 1.0) / 2.0) * (size - 1)


def draw_scatter(samples: Sequence[Sequence[float]], centres: Sequence[Sequence[float]], sigma: float, *,
                 radius: float = 3.0, size: int = PANEL) -> Image.Image:
    """One panel: samples over the centres and their high-quality discs."""
    extent = panel_extent(centres)
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    mid = (size - 1) / 2
    draw.line([(0, mid), (size - 1, mid)], fill=(225, 225, 225))
    draw.line([(mid, 0), (mid, size - 1)], fill=(225, 225, 225))
    r = max(2.0, radius * sigma / extent * (size - 1) / 2)
    for cx, cy in centres:
        px, py = to_pixels(cx, cy, extent, size)
        draw.ellipse([px - r, py - r, px + r, py + r], outline=(220, 40, 40))
    for x, y in samples:
        px, py = to_pixels(x, y, extent, size)
        if 0 <= px < size and 0 <= py < size:
            draw.point([(px, py)], fill=(30, 80, 200))
    return img


def draw_panels(records: Sequence[Mapping[str, Any]], combinations: Sequence[Any], datasets: Sequence[str],
                seed: int, path: str | Path, *, radius: float = 3.0) -> None:
    """Write the grid of panels (the runs of ``seed``) as a PNG at ``path``."""
    font = ImageFont.load_default()
    cell_w, cell_h = PANEL + 2 * MARGIN, PANEL + CAPTION + 2 * MARGIN
    sheet = Image.new("RGB", (cell_w * len(datasets), cell_h * len(combinations)), "white")
    draw = ImageDraw.Draw(sheet)
    by_key = {(r["combination"], r["dataset"], r["seed"]): r for r in records}
    for row, combination in enumerate(combinations):
        for col, dataset in enumerate(datasets):
            x0, y0 = col * cell_w + MARGIN, row * cell_h + MARGIN
            record = by_key.get((combination.name, dataset, seed))
            title = f"{combination.name} on {dataset}, seed {seed}"
            if record is None or record.get("error") or not record.get("centres"):
                error = (record or {}).get("error") or "not run"
                draw.text((x0, y0), title, fill="black", font=font)
                draw.text((x0, y0 + 14), f"failed: {error.splitlines()[0][:40]}", fill=(200, 0, 0), font=font)
                continue
            summary = (f"{record['modes_covered']}/{record['num_modes']} modes, "
                       f"{100 * record['high_quality']:.1f}% high quality")
            draw.text((x0, y0), title, fill="black", font=font)
            draw.text((x0, y0 + 14), summary, fill="black", font=font)
            panel = draw_scatter(record["samples"], record["centres"], record["sigma"], radius=radius)
            sheet.paste(panel, (x0, y0 + CAPTION))
            draw.rectangle([x0 - 1, y0 + CAPTION - 1, x0 + PANEL, y0 + CAPTION + PANEL], outline=(160, 160, 160))

    def write(tmp: Path) -> None:
        buffer = io.BytesIO()
        sheet.save(buffer, format="png")
        tmp.write_bytes(buffer.getvalue())

    path = Path(path)
    write_output(path, write)
