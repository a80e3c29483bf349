"""The HTML report renders in headless Chromium: charts drawn, totals shown, not a blank page.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); skipped with that advice without it.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest

from cloudsweep import reports

from .conftest import Known

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed: apt-get install -y chromium"
)


def chromium(page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="cs-chromium-") as profile:
        return subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--no-first-run",
                "--no-default-browser-check",
                f"--user-data-dir={profile}",
                "--window-size=1200,900",
                *extra,
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def png_pixels(data: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct pixel values of an 8-bit RGB(A) PNG (no dependencies)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour in (2, 6)
    channels = 4 if colour == 6 else 3
    chunks, offset = b"", 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        if kind == b"IDAT":
            chunks += data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    raw = zlib.decompress(chunks)
    stride = width * channels
    previous = bytearray(stride)
    seen: set[bytes] = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[i] = (line[i] + pred) & 0xFF
        if row % 8 == 0:
            seen.update(bytes(line[i : i + 3]) for i in range(0, stride, channels * 8))
        previous = line
    return width, height, seen


def test_the_html_report_renders_in_headless_chromium(known: Known, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(
        reports.render_html(reports.build_report(known.url, "team-a")), encoding="utf-8"
    )

    dom = chromium(page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for chart in ("chart-waste-by-type", "chart-waste-trend", "chart-savings"):
        assert f'id="{chart}"' in html
    assert html.count("<svg") == 3
    assert html.count("<rect") >= 4 and "<polyline" in html
    assert '<div class="figure" id="total-monthly-waste">$63.60</div>' in html
    assert '<div class="figure" id="total-annual-waste">$763.20</div>' in html
    assert '<div class="figure" id="total-savings">$10.00</div>' in html
    assert "ebs-volume" in html and "elastic-ip" in html

    shot = tmp_path / "report.png"
    result = chromium(page, f"--screenshot={shot}")
    assert result.returncode == 0, result.stderr[-2000:]
    width, height, colours = png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 900)
    assert len(colours) > 20, "the screenshot is (nearly) blank"
