"""The quick mode of ``benchmarks/studio_latency.py`` (CI runs it; the full run is not a test): a tiny
StyleGAN served, ten slider moves measured in headless Chromium, the JSON and Markdown written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser import find_chromium

pytest.importorskip("starlette", reason="the studio's extra (starlette, uvicorn) is not installed")


@pytest.mark.slow
def test_quick_latency_run_reports_every_number(tmp_path: Path) -> None:
    found = find_chromium()
    if isinstance(found, str):
        pytest.skip(found)
    from benchmarks.studio_latency import main, percentile

    assert main(["--quick", "--out", str(tmp_path), "--moves", "12"]) == 0
    report = json.loads((tmp_path / "studio_latency.json").read_text())
    r = report["result"]
    assert r["moves"] == 12 and len(r["latencies_ms"]) == 12
    assert 0 < r["median_ms"] <= r["p95_ms"] <= r["max_ms"]
    assert r["server_median_ms"] is not None and 0 < r["server_median_ms"] < r["max_ms"]
    assert report["torch"] and report["date"] and report["browser"].lower().startswith("chromium")
    assert "| 12 |" in (tmp_path / "studio_latency.md").read_text()
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0 and percentile([1.0, 2.0], 0.95) == pytest.approx(1.95)
