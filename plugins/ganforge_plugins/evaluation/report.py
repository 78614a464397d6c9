"""``ganforge report RUN_DIR``: one self-contained HTML page about a training run.

The page shows the loss curves and every other logged scalar (metrics from the ``eval`` callback,
throughput) against the generator step as inline SVG line charts, the preview grids over time
(``RUN_DIR/samples/step-*.png``, inlined as base64 PNG), the evaluation protocol when the run has one
(``eval-protocol.json``) and the resolved config (``config.toml``). It is written to
``RUN_DIR/report/index.html`` (or ``--out``) with, beside it, the grids it shows and a montage of them
(``samples-over-time.png``). Nothing is fetched: no scripts, fonts or styles from elsewhere.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from attrs import validators as v
from ganforge import OutputError, atomic_write, hookimpl, make_output_dir, write_output

SKIP_KEYS = {"step", "images_seen", "time"}
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


# -- reading the run -----------------------------------------------------------------------------


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``metrics.jsonl``; a truncated last line (a crash mid-write) is skipped."""
    records = []
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int | float):
            records.append(record)
    return records


def series_groups(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Chart title -> series name -> ``(step, value)`` points: the losses together, each other scalar
    alone (a ``*_mean`` with its ``*_std`` drawn as the band mean +- std is left to the reader: std is
    listed as its own series)."""
    series: dict[str, list[tuple[float, float]]] = {}
    for r in records:
        for key, value in r.items():
            if key in SKIP_KEYS or key.startswith("time_") or isinstance(value, bool):
                continue
            if isinstance(value, int | float) and math.isfinite(value):
                series.setdefault(key, []).append((float(r["step"]), float(value)))
    groups: dict[str, dict[str, list[tuple[float, float]]]] = {}
    losses = {k: pts for k, pts in series.items() if k.startswith("loss_")}
    if losses:
        groups["losses"] = losses
    for key in sorted(k for k in series if not k.startswith("loss_")):
        if key.endswith("_std") and key.removesuffix("_std") + "_mean" in series:
            continue
        group = {key: series[key]}
        std = key.removesuffix("_mean") + "_std"
        if key.endswith("_mean") and std in series:
            group[std] = series[std]
        groups[key.removesuffix("_mean")] = group
    return groups


# -- drawing -------------------------------------------------------------------------------------


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``[lo, hi]``."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 0.5 and len(ticks) < 4 * count:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def svg_line_chart(title: str, series: Mapping[str, Sequence[tuple[float, float]]], *, width: int = 640,
                   height: int = 280) -> str:
    """An SVG line chart of one or more ``(x, y)`` series with axes, ticks and a legend."""
    left, right, top, bottom = 64, 16, 28, 40
    pts = [p for s in series.values() for p in s]
    if not pts:
        return ""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    xt, yt = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / ((y1 - y0) or 1) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
           f'<text x="{left}" y="18" font-size="14" font-weight="bold">{html.escape(title)}</text>']
    for t in yt:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" font-size="11" text-anchor="end">{_fmt(t)}</text>')
    for t in xt:
        out.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#333"/>')
        out.append(f'<text x="{sx(t):.1f}" y="{top + ph + 16}" font-size="11" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 6}" font-size="11" text-anchor="middle">step</text>')
    for i, (name, points) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(points))
        if len(points) == 1:
            (x, y), = points
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>')
        else:
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}"/>')
        lx = left + 8 + 150 * i
        out.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{top + 10}" y2="{top + 10}" stroke="{colour}" '
                   'stroke-width="2"/>')
        out.append(f'<text x="{lx + 22}" y="{top + 14}" font-size="11">{html.escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def pick_evenly(items: Sequence[Path], count: int) -> list[Path]:
    """At most ``count`` items spread evenly, always with the first and the last."""
    if len(items) <= count:
        return list(items)
    idx = sorted({round(i * (len(items) - 1) / (count - 1)) for i in range(count)})
    return [items[i] for i in idx]


def montage(paths: Sequence[Path], out: Path) -> None:
    """The grids side by side, in order, on one PNG."""
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in paths]
    height = max(im.height for im in images)
    sheet = Image.new("RGB", (sum(im.width for im in images) + 8 * (len(images) - 1), height), "white")
    x = 0
    for im in images:
        sheet.paste(im, (x, 0))
        x += im.width + 8

    def write(tmp: Path) -> None:
        sheet.save(tmp, format="PNG")

    atomic_write(out, write)


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
.grids{display:flex;flex-wrap:wrap;gap:12px}.grids figure{margin:0}figcaption{font-size:.85em;text-align:center}
pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:.85em}table{border-collapse:collapse}
td,th{padding:2px 10px;border-bottom:1px solid #eee;text-align:right}img.grid{image-rendering:pixelated;width:256px}"""


def render(run_dir: Path, out_dir: Path, *, max_grids: int) -> str:
    records = read_records(run_dir / "metrics.jsonl")
    groups = series_groups(records)
    grids = sorted((run_dir / "samples").glob("step-*.png"))
    shown = pick_evenly(grids, max_grids)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>ganforge report: "
             f"{html.escape(run_dir.name)}</title><style>{STYLE}</style></head><body>",
             f"<h1>ganforge run <code>{html.escape(str(run_dir))}</code></h1>"]
    if records:
        last = records[-1]
        parts.append(f"<p>{len(records)} log records; last step {int(last['step'])}, "
                     f"{int(last.get('images_seen', 0))} images seen.</p>")
    parts.append("<h2>Curves</h2>")
    if not groups:
        parts.append("<p>No scalars logged (metrics.jsonl is missing or empty).</p>")
    for title, series in groups.items():
        parts.append(f"<div>{svg_line_chart(title, series)}</div>")
    final = {k: v for r in records for k, v in r.items() if k not in SKIP_KEYS and isinstance(v, int | float)
             and not k.startswith("time_")}
    if final:
        parts.append("<h3>Last logged values</h3><table>" + "".join(
            f"<tr><th>{html.escape(k)}</th><td>{_fmt(float(v))}</td></tr>" for k, v in sorted(final.items())
        ) + "</table>")
    parts.append("<h2>Samples over time</h2>")
    if shown:
        parts.append("<div class='grids'>")
        for p in shown:
            step = p.stem.removeprefix("step-").lstrip("0") or "0"
            parts.append(f"<figure><img class='grid' alt='samples at step {step}' src='{_png_data_uri(p)}'>"
                         f"<figcaption>step {step}</figcaption></figure>")
        parts.append("</div>")
        if len(grids) > len(shown):
            parts.append(f"<p>{len(shown)} of {len(grids)} grids shown, evenly spaced.</p>")
    else:
        parts.append("<p>No sample grids (samples/step-*.png).</p>")
    protocol = run_dir / "eval-protocol.json"
    if protocol.is_file():
        parts.append("<h2>Evaluation protocol</h2><pre>" + html.escape(protocol.read_text(encoding="utf-8"))
                     + "</pre>")
    config = run_dir / "config.toml"
    parts.append("<h2>Resolved config</h2>")
    parts.append("<pre>" + html.escape(config.read_text(encoding="utf-8")) + "</pre>" if config.is_file()
                 else "<p>No config.toml.</p>")
    parts.append("</body></html>")
    if shown:
        for p in shown:
            (out_dir / p.name).write_bytes(p.read_bytes())
        montage(shown, out_dir / "samples-over-time.png")
    return "\n".join(parts)


@attrs.frozen(kw_only=True)
class ReportConfig:
    max_grids: int = attrs.field(default=12, validator=v.ge(1))  # sample grids shown, evenly spaced over time


class Report:
    """Write a self-contained HTML report of a run: loss and metric curves, samples over time, config."""

    def __init__(self, config: ReportConfig) -> None:
        self.config = config

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", help="a run directory (config.toml, metrics.jsonl, samples/)")
        parser.add_argument("--out", help="HTML file to write (default: RUN_DIR/report/index.html)")

    def run(self, args: argparse.Namespace, manager: Any) -> int:
        run_dir = Path(args.run_dir)
        if not run_dir.is_dir():
            raise OutputError(f"report: run directory {str(run_dir)!r} does not exist")
        if not any((run_dir / n).exists() for n in ("metrics.jsonl", "config.toml", "samples")):
            raise OutputError(f"report: {str(run_dir)!r} is not a run directory (no metrics.jsonl, config.toml "
                              "or samples/)")
        out = Path(args.out) if getattr(args, "out", None) else run_dir / "report" / "index.html"
        make_output_dir(out.parent, what=f"report: cannot write {str(out)!r}")
        try:
            html = render(run_dir, out.parent, max_grids=self.config.max_grids)  # copies grids beside it
        except OSError as exc:
            raise OutputError(f"report: cannot write into {str(out.parent)!r}: {exc.strerror or exc}") from None
        write_output(out, lambda tmp: tmp.write_text(html, encoding="utf-8"))
        print(f"wrote {out}", file=sys.stderr)
        return 0


@hookimpl
def ganforge_register_commands(register):
    register("report", Report, ReportConfig)
