"""Reports lead with the answer, the eval-bag / demo report and the training report alike: rendered by a real
browser (headless Chromium, when one is installed), the summary card with the acceptance verdicts and the first
picture lie on the first screen, and the full metric table is collapsed. Also the diagnostics shown are those
seen while the stream ran."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import write_small_drive

VIEWPORT = (1280, 800)  # a laptop screen's first view

PROBE = r"""<script>
window.addEventListener("load", () => {
  const box = (e) => {
    if (!e) return null; const b = e.getBoundingClientRect(); return [b.top, b.bottom, b.width, b.left];
  };
  const details = document.getElementById("all-metrics");
  document.body.setAttribute("data-layout", JSON.stringify({
    vh: window.innerHeight, card: box(document.getElementById("summary")),
    sample: box(document.querySelector("#figures img")), details_open: details ? details.open : null,
    frames: [...document.querySelectorAll("#figures figure")].filter((f) => /image \| pred/.test(f.textContent))
      .map((f) => box(f.querySelector("img"))), details: box(details),
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


@dataclass(frozen=True)
class Report:
    path: Path
    card_has: tuple[str, ...]  # texts the summary card must show
    verdicts: tuple[int, int]  # (FAIL, PASS) badges on the card


@pytest.fixture(scope="module")
def bag_report(tmp_path_factory) -> Report:
    """An eval-bag report of a short drive whose outputs are its ground truth, depth × 0.9: abs_rel 0.1."""
    pytest.importorskip("rclpy")  # the outputs bag is written with ROS message types
    from test_eval_bag import _fake_outputs

    from depth_node.evaluate.bag_score import ScoreSettings, score_run

    tmp = tmp_path_factory.mktemp("report")
    drive = write_small_drive(tmp / "drive", seed=9001, frames=24, fmt="mcap")
    run = _fake_outputs(drive, tmp / "outputs", depth_factor=0.9)
    settings = ScoreSettings(image="/camera/image_raw", gt_depth="/ground_truth/depth", gt_odom="/ground_truth/odom")
    score_run(drive, run, tmp / "out", settings, title="demo-like report",
              limits={"abs_rel": 0.05, "ate_se3_pct_of_path": 5.0})  # abs_rel 0.1 must FAIL, ATE 0 must PASS
    # depth × 0.9: GT / published = 1/0.9 on every frame, a depth-scale error of 11.11 %; the rigidly moved
    # odometry has no scale error; limits carry their units
    return Report(tmp / "out" / "report.html", (
        "depth abs_rel", "1 of 2 figures with a limit fail", "model", "camera", "backend", "320×96",
        "<th>depth scale error (per-frame median, after warm-up)</th><td>11.11 %</td>",
        "<th>odometry scale error (Sim(3))</th>", "<td>≤ 0.05</td>", "<td>≤ 5 % of path</td>",
        "odometry RPE translation"), (1, 1))


TRAIN_LIMIT = 1e-3  # output.max_abs_rel of the training run: a 2-step network cannot reach it, so the card FAILs


@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    """A real 2-epoch training run (1 step per epoch, batch 2) on a 5-frame rendered drive, validated on 4
    rendered frames with depth, report on."""
    from test_train_loop import sim_sequences, tiny_cfg

    from depth_node.train.trainer import Trainer

    tmp = tmp_path_factory.mktemp("train")
    val = sim_sequences(False, frames=4, seed=99, depth=True)
    cfg = tiny_cfg("M", optim__epochs=2, output__report=True, output__report_samples=2,
                   output__max_abs_rel=TRAIN_LIMIT)
    res = Trainer(cfg, tmp, train_sequences=sim_sequences(False, frames=5), val_sequences=val).train()
    return res, val


def _abs_rel_of_model_file(model_path: Path, val) -> float:
    """Validation abs_rel of the written model file, computed here: Monodepth2's disparity → depth, per-image
    median scaling on GT in (1e-3, 80) m, prediction clamped to that range, mean of the per-image means."""
    import torch

    from depth_node.checkpoints.model_file import build_depth_net, load_model

    mf = load_model(model_path)
    net = build_depth_net(mf).eval()
    seq = val[0]
    per_image = []
    for i in range(len(seq)):
        x = torch.from_numpy(np.ascontiguousarray(seq.frame(i))).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            disp = net(x, (0,))[0][0, 0].double().numpy()
        lo, hi = 1.0 / 100.0, 1.0 / 0.1  # disparity range from the default depth range 0.1…100 m
        pred = 1.0 / (lo + (hi - lo) * disp)
        gt = np.asarray(seq.depth[i], dtype=np.float64)
        assert gt.shape == pred.shape
        ok = np.isfinite(gt) & (gt > 1e-3) & (gt < 80.0)
        g, p = gt[ok], pred[ok]
        p = np.clip(p * np.median(g) / np.median(p), 1e-3, 80.0)
        per_image.append(np.mean(np.abs(g - p) / g))
    return float(np.mean(per_image))


def _best_and_last(out: Path) -> tuple[int, int]:
    """Epochs with the lowest and the last validation abs_rel, from the loop's own history.json."""
    hist = json.loads((out / "history.json").read_text())
    return min(hist, key=lambda h: h["val"]["abs_rel"])["epoch"], hist[-1]["epoch"]


@pytest.fixture(scope="module")
def train_report(train_run) -> Report:
    from test_train_loop import H, W

    from depth_node.sim.config import KITTI_INTRINSICS

    res, _ = train_run
    hfov = math.degrees(2 * math.atan(KITTI_INTRINSICS.width / 2 / KITTI_INTRINSICS.fx))  # the drives' camera
    best, last = _best_and_last(res.out_dir)
    last_item = (f"validation abs_rel (last epoch {last})",) if last != best else ()
    return Report(res.report, (f"validation abs_rel (best epoch {best})", "1 of 1 figures with a limit fail",
                               "validation δ&lt;1.25", "validation rmse", *last_item,
                               "Monodepth2 ResNet-18 depth + ResNet-18 pose", f"frames {W}×{H}",
                               f"hfov {hfov:.0f}°", "2 steps, 2 epochs, batch 2", "cpu, amp off", "min (training",
                               "training loss (epoch 2 mean)"), (1, 0))


@pytest.fixture(params=["eval-bag", "training"])
def report(request) -> Report:
    return request.getfixturevalue({"eval-bag": "bag_report", "training": "train_report"}[request.param])


def test_report_html_order_and_verdicts(report):
    page = report.path.read_text()
    pos = [page.index(s) for s in ('id="summary"', 'id="figures"', "<img", 'id="all-metrics"')]
    assert pos == sorted(pos), "summary card, then pictures, then the collapsed metric table"
    figures = page.split('id="figures"')[1].split('id="all-metrics"')[0]
    assert "<figcaption>" in figures and re.search(r"image \| pred[^<]*\| (GT|ground truth)", figures), \
        "the sample frames (image | prediction | GT) are among the pictures"
    assert re.search(r"<details id=\"all-metrics\">(?!\s*<details)", page) and " open" not in page.split(
        'id="all-metrics"')[1][:5]
    card = page.split('id="summary"')[1].split("</section>")[0]
    for text in report.card_has:
        assert text in card, text
    assert (card.count(">FAIL<"), card.count(">PASS<")) == report.verdicts


def test_training_card_figures_match_the_model_file(train_run):
    """The card's abs_rel (4 significant digits) and the embedded metrics' (full precision) are the written
    model file's validation abs_rel, recomputed here; it exceeds the limit, so the card says FAIL."""
    res, val = train_run
    want = _abs_rel_of_model_file(res.model_path, val)
    assert want > TRAIN_LIMIT
    page = res.report.read_text()
    raw = json.loads(page.split('<script type="application/json" id="metrics">')[1].split("</script>")[0])
    assert raw["best"]["abs_rel"] == pytest.approx(want, rel=1e-5)
    card = page.split('id="summary"')[1].split("</section>")[0]
    best, _ = _best_and_last(res.out_dir)
    m = re.search(rf"<th>validation abs_rel \(best epoch {best}\)</th><td>([0-9.e+-]+) </td><td>≤ 0.001</td>"
                  r"<td><span class=\"fail\">FAIL</span>", card)
    assert m, card[:1500]
    shown = float(m.group(1))
    assert abs(shown - want) <= 0.5 * 10 ** (math.floor(math.log10(want)) - 3) * (1 + 1e-9) + 1e-5 * want


def test_first_screen_in_chromium(report, tmp_path):
    if _chromium() is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); the browser check needs one")
    probe = report.path.with_name("probe.html")
    probe.write_text(report.path.read_text().replace("</body>", PROBE + "</body>"))
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
    assert lay["frames"] and all(f[2] > 100 and f[1] <= lay["details"][0] for f in lay["frames"]), \
        f"sample frames drawn, above the collapsed table: {lay}"
    assert (lay["fails"], lay["passes"]) == report.verdicts
    # the picture a person sees: a screenshot whose first screen holds the card's red FAIL and the frame's colours
    shot = tmp_path / "first_screen.png"
    r = _browser(f"--screenshot={shot}", report.path.as_uri())
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (VIEWPORT[1], VIEWPORT[0])
    red = (img[..., 0] > 150) & (img[..., 1] < 60) & (img[..., 2] < 60)  # the FAIL badge (#c0151b)
    top, bottom = int(lay["card"][0]), int(lay["card"][1])
    assert red[top:bottom].sum() > 20, "the card's FAIL verdict is not drawn where the DOM says the card is"
    top, bottom, width, left = (int(v) for v in lay["sample"])
    frame = img[top:min(vh, bottom), left:left + width]
    assert frame.size and frame.std() > 20, "the first screen shows no picture"


def test_diagnostics_are_those_of_the_last_full_period(tmp_path):
    """Rates and latencies are per diagnostics period. The stream starts and ends inside a period (a 10 Hz
    stream ending 0.8 s into the last one reads 7.99 Hz there), and after it ends the node still publishes
    diagnostics (input rate 0, no latency): the report shows the last full period with images arriving (the
    one before the final active one), with the final cumulative counters."""
    from depth_node.evaluate.bag_score import _diagnostics
    from depth_node.io.bags import BagReader, BagWriter, typestore

    ts = typestore().types
    header = ts["std_msgs/msg/Header"](stamp=ts["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="")

    def status(rate: float, published: int) -> object:
        kv = [ts["diagnostic_msgs/msg/KeyValue"](key=k, value=str(v)) for k, v in
              (("input_rate_hz", rate), ("latency_mean_ms", 40.0 + rate if rate else 0.0),
               ("frames_published", published))]
        st = ts["diagnostic_msgs/msg/DiagnosticStatus"](level=0, name="/mono_depth: depth",
                                                       message="ok", hardware_id="depth_node", values=kv)
        return ts["diagnostic_msgs/msg/DiagnosticArray"](header=header, status=[st])

    def read(seq) -> dict:
        path = tmp_path / f"outs{len(list(tmp_path.iterdir()))}"
        with BagWriter(path) as w:
            for i, (rate, n) in enumerate(seq):
                w.write("/diagnostics", (i + 1) * 10**9, status(rate, n))
        with BagReader(path) as r:
            return _diagnostics(r)

    # idle, partial first period, two full ones, the partial last one, idle after the stream
    d = read(((0.0, 0), (3.0, 3), (10.0, 13), (9.9, 23), (7.99, 31), (0.0, 31), (0.0, 31)))
    assert d == {"input_rate_hz": "9.9", "latency_mean_ms": "49.9", "frames_published": "31"}
    # a stream inside one period: that period
    assert read(((0.0, 0), (6.0, 6), (0.0, 6))) == {"input_rate_hz": "6.0", "latency_mean_ms": "46.0",
                                                   "frames_published": "6"}
    # no image ever: the final status
    assert read(((0.0, 0), (0.0, 0)))["input_rate_hz"] == "0.0"


def test_card_verdict_counts_the_judged_figures_and_limits_carry_units():
    """A card whose rows without a limit are not read as passed, and the console's acceptance lines in the
    card's words, units and digits."""
    from depth_node.evaluate import report as R
    from depth_node.evaluate.bag_score import acceptance_lines

    items = [R.CardItem.judged("depth abs_rel", 0.098, 0.12), R.CardItem.judged("ATE", 0.59, 5.0, "% of path"),
             R.CardItem.judged("t_rel", 2.1, None, "%")]
    page = R._card_html(items, {})
    assert "all 2 figures with a limit pass; 1 more shown without a limit" in page
    assert "<td>≤ 5 % of path</td>" in page and "<td>≤ 0.12</td>" in page
    assert page.count(">PASS<") == 2
    metrics = {"acceptance": {"abs_rel": {"value": 0.0980594, "limit": 0.12, "pass": True},
                              "ate_se3_pct_of_path": {"value": 5.1234567, "limit": 5.0, "pass": False}}}
    assert acceptance_lines(metrics) == ["depth abs_rel: 0.09806 (limit ≤ 0.12): PASS",
                                         "odometry ATE (SE(3)): 5.123 % of path (limit ≤ 5 % of path): FAIL"]


@pytest.mark.parametrize("mode", ["S", "M"])
def test_training_report_without_validation_data_shows_training_frames(tmp_path, mode):
    """The adapt workflow trains without GT validation data: the report still shows depth pictures, image |
    predicted depth of training frames spread over the data (first and last of the drive), labelled as training
    frames without GT. A model with a metric scale (stereo-trained: baseline) shows metres with the report's
    colour bar, the 128-px frames enlarged to have room for it; a relative one says its depth has no unit."""
    from PIL import Image
    from test_train_loop import sim_sequences, tiny_cfg

    from depth_node.train.trainer import Trainer

    w, h = 128, 64
    seqs = sim_sequences(mode == "S", frames=5, size=(w, h))
    cfg = tiny_cfg(mode, data__width=w, data__height=h, optim__max_steps=1, output__report=True,
                   output__report_samples=2)
    res = Trainer(cfg, tmp_path, train_sequences=seqs, val_sequences=[]).train()
    page = res.report.read_text()
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", page.split('id="figures"')[1])
    frames = [c for c in captions if "training frame (no GT) | predicted depth" in c]
    names = [f"{seqs[0].name}/{i:06d}" for i in (0, len(seqs[0]) - 1)]
    assert [c.split(":")[0] for c in frames] == names, captions
    assert "No validation data with ground truth" in page
    pngs = sorted((res.out_dir / "report").glob("train_*.png"))
    assert len(pngs) == 2
    panel = np.asarray(Image.open(pngs[0]).convert("RGB"))
    k = panel.shape[1] // w
    assert k >= 2 and panel.shape[1] == k * w  # enlarged (a 128-px panel has no room for a colour bar)
    rows = 2 * k * h + 4  # image, separator, predicted depth
    if mode == "S":  # metric (stereo baseline): metres, with the colour bar under the depth
        assert all("depth colour scale" in c and " m (" in c for c in frames), frames
        assert panel.shape[0] > rows + 20
    else:  # relative: no metres, so no bar
        assert all("relative depth" in c for c in frames) and panel.shape[0] == rows, (frames, panel.shape)
