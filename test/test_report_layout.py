"""The eval-bag / demo report leads with the answer: rendered by a real browser (headless Chromium, when one is
installed), the summary card with the acceptance verdicts and the first sample frame lie on the first screen,
and the full metric table is collapsed. Also the diagnostics shown are those seen while the stream ran."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import write_small_drive

pytest.importorskip("rclpy")  # the outputs bag is written with ROS message types

from test_eval_bag import _fake_outputs

from depth_node.evaluate.bag_score import ScoreSettings, score_run

VIEWPORT = (1280, 800)  # a laptop screen's first view

PROBE = """<script>
window.addEventListener("load", () => {
  const box = (e) => { if (!e) return null; const b = e.getBoundingClientRect(); return [b.top, b.bottom, b.width]; };
  const details = document.getElementById("all-metrics");
  document.body.setAttribute("data-layout", JSON.stringify({
    vh: window.innerHeight, card: box(document.getElementById("summary")),
    sample: box(document.querySelector("#figures img")), details_open: details ? details.open : null,
    table_visible: details ? details.querySelector("table").checkVisibility() : null,
    fails: document.querySelectorAll("#summary span.fail").length,
    passes: document.querySelectorAll("#summary span.pass").length,
  }));
});
</script>"""


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _browser(*args: str) -> subprocess.CompletedProcess:
    exe = _chromium()
    assert exe is not None
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "--virtual-time-budget=10000", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """An eval-bag report of a short drive whose outputs are its ground truth, depth × 0.9: abs_rel 0.1."""
    tmp = tmp_path_factory.mktemp("report")
    drive = write_small_drive(tmp / "drive", seed=9001, frames=24, fmt="mcap")
    run = _fake_outputs(drive, tmp / "outputs", depth_factor=0.9)
    settings = ScoreSettings(image="/camera/image_raw", gt_depth="/ground_truth/depth", gt_odom="/ground_truth/odom")
    score_run(drive, run, tmp / "out", settings, title="demo-like report",
              limits={"abs_rel": 0.05, "ate_se3_pct_of_path": 5.0})  # abs_rel 0.1 must FAIL, ATE 0 must PASS
    return tmp / "out" / "report.html"


def test_report_html_order_and_verdicts(report):
    page = report.read_text()
    pos = [page.index(s) for s in ('id="summary"', 'id="figures"', "sample_0" if "sample_0" in page else "<img",
                                   'id="all-metrics"')]
    assert pos == sorted(pos), "summary card, then pictures, then the collapsed metric table"
    assert re.search(r"<details id=\"all-metrics\">(?!\s*<details)", page) and " open" not in page.split(
        'id="all-metrics"')[1][:5]
    card = page.split('id="summary"')[1].split("</section>")[0]
    assert "depth abs_rel" in card and "FAIL" in card and "PASS" in card and "1 of 2 acceptance figures fail" in card
    for fact in ("model", "camera", "backend", "320×96"):
        assert fact in card, fact


def test_first_screen_in_chromium(report, tmp_path):
    if _chromium() is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); the browser check needs one")
    probe = report.with_name("probe.html")
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    dom = _browser("--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r'data-layout="([^"]*)"', dom.stdout)
    assert m, "the probe script did not run: " + dom.stdout[:500]
    lay = json.loads(m.group(1).replace("&quot;", '"'))
    vh = lay["vh"]  # the page's own viewport (the headless window keeps some height for itself)
    assert 500 < vh <= VIEWPORT[1]
    assert lay["card"] and 0 <= lay["card"][0] and lay["card"][1] <= vh, f"summary card off the first screen: {lay}"
    assert lay["sample"] and lay["sample"][0] < vh and lay["sample"][2] > 100, f"no sample frame on screen: {lay}"
    assert lay["details_open"] is False and lay["table_visible"] is False, "the full metric table is collapsed"
    assert (lay["fails"], lay["passes"]) == (1, 1)
    # the picture a person sees: a screenshot whose first screen holds the card's red FAIL and the frame's colours
    shot = tmp_path / "first_screen.png"
    r = _browser(f"--screenshot={shot}", report.as_uri())
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (VIEWPORT[1], VIEWPORT[0])
    red = (img[..., 0] > 150) & (img[..., 1] < 60) & (img[..., 2] < 60)  # the FAIL badge (#c0151b)
    top, bottom = int(lay["card"][0]), int(lay["card"][1])
    assert red[top:bottom].sum() > 20, "the card's FAIL verdict is not drawn where the DOM says the card is"
    frame = img[int(lay["sample"][0]):min(vh, int(lay["sample"][1]))]
    assert frame.size and frame.std() > 20, "the first screen shows no picture"


def test_diagnostics_are_those_seen_while_the_stream_ran(tmp_path):
    """After the stream ends the node still publishes diagnostics (input rate 0, no latency): the report shows
    the last status with images arriving, and the final cumulative counters."""
    from depth_node.evaluate.bag_score import _diagnostics
    from depth_node.io.bags import BagReader, BagWriter, typestore

    ts = typestore().types
    header = ts["std_msgs/msg/Header"](stamp=ts["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="")

    def status(rate: float, published: int) -> object:
        kv = [ts["diagnostic_msgs/msg/KeyValue"](key=k, value=str(v)) for k, v in
              (("input_rate_hz", rate), ("latency_mean_ms", 40.0 if rate else 0.0), ("frames_published", published))]
        st = ts["diagnostic_msgs/msg/DiagnosticStatus"](level=0, name="/mono_depth: depth",
                                                       message="ok", hardware_id="depth_node", values=kv)
        return ts["diagnostic_msgs/msg/DiagnosticArray"](header=header, status=[st])

    with BagWriter(tmp_path / "outs") as w:
        for i, (rate, n) in enumerate(((10.0, 10), (9.5, 20), (0.0, 24), (0.0, 24))):
            w.write("/diagnostics", (i + 1) * 10**9, status(rate, n))
    with BagReader(tmp_path / "outs") as r:
        d = _diagnostics(r)
    assert d == {"input_rate_hz": "9.5", "latency_mean_ms": "40.0", "frames_published": "24"}
