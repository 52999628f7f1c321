"""`depth-node eval-bag` and `depth-node demo`: scoring real bags, the node over ROS 2 vs the offline pipeline,
and the demo pipeline end to end (render → node process → replay → record → report)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_small_drive

pytest.importorskip("rclpy")

from depth_node.errors import DepthNodeError
from depth_node.evaluate.bag_score import ScoreSettings, check_ground_truth_topics, gt_depth_metres, score_run
from depth_node.io.bags import BagReader, BagWriter, stamp_to_ns, typestore
from depth_node.io.image_codec import decode_image, encode_image
from depth_node.runtime.bag_run import OUTPUTS, RunResult, output_topic
from depth_node.runtime.topics import DEPTH_IMAGE, DEPTH_INFO

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "depth_node.cli"]


def _env(domain: int) -> dict[str, str]:
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("ROS_LOCALHOST_ONLY", None)
    return env


@pytest.fixture(scope="module")
def drive_bag(tmp_path_factory) -> Path:
    """A short held-out-style drive at the small model's size, as the demo renders it."""
    return write_small_drive(tmp_path_factory.mktemp("drive") / "bag", seed=9001, frames=24, fmt="mcap")


def _depth_by_stamp(bag: Path, topic: str) -> dict[int, np.ndarray]:
    with BagReader(bag) as r:
        return {stamp_to_ns(m.msg.header.stamp): np.array(decode_image(m.msg), np.float32) for m in r.messages([topic])}


def diagnostics_status(rate: float, published: int, **values) -> object:
    """A /diagnostics array with one status of the node (`mono_depth`), as it publishes each period."""
    ts = typestore().types
    header = ts["std_msgs/msg/Header"](stamp=ts["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="")
    kv = [ts["diagnostic_msgs/msg/KeyValue"](key=k, value=str(v)) for k, v in
          (("input_rate_hz", rate), ("output_rate_hz", rate), ("latency_mean_ms", 40.0 if rate else 0.0),
           ("frames_published", published), *values.items())]
    st = ts["diagnostic_msgs/msg/DiagnosticStatus"](level=0, name="/depth_node/mono_depth: depth", message="ok",
                                                   hardware_id="depth_node", values=kv)
    return ts["diagnostic_msgs/msg/DiagnosticArray"](header=header, status=[st])


def _fake_outputs(drive: Path, out: Path, depth_factor: float, drop_every: int = 0, mode: str = "offline",
                  model: str = "ground truth", diagnostics: list | None = None) -> RunResult:
    """An outputs bag as the node would record it, made from the drive's own ground truth: depth = GT × factor
    (NaN kept), odometry = GT poses expressed in another odom frame. The scorer must see exactly that.
    `diagnostics`: /diagnostics arrays written one per second."""
    ts = typestore().types
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90° yaw: SE(3) alignment removes it
    n_in = 0
    with BagReader(drive) as r, BagWriter(out) as w:
        for k, v in OUTPUTS.items():
            w.add_topic(output_topic(k), v)
        if diagnostics:
            w.add_topic("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray")
            for i, d in enumerate(diagnostics):
                w.write("/diagnostics", (i + 1) * 10**9, d)
        for i, m in enumerate(r.messages(["/ground_truth/depth"])):
            n_in += 1
            if drop_every and i % drop_every == 1:
                continue
            gt = gt_depth_metres(m.msg)
            enc = encode_image((gt * depth_factor).astype(np.float32), "32FC1")
            img = ts["sensor_msgs/msg/Image"](header=m.msg.header, height=enc.height, width=enc.width,
                                              encoding=enc.encoding, is_bigendian=0, step=enc.step, data=enc.data)
            w.write(output_topic(DEPTH_IMAGE), m.stamp_ns, img)
        for i, m in enumerate(r.messages(["/ground_truth/odom"])):
            if drop_every and i % drop_every == 1:
                continue
            p = m.msg.pose.pose.position
            q = m.msg.pose.pose.orientation
            from depth_node.geometry.poses import matrix_from_quaternion, quaternion_from_matrix

            R = rot @ matrix_from_quaternion([q.x, q.y, q.z, q.w])
            t = rot @ np.array([p.x, p.y, p.z]) + [5.0, -2.0, 0.3]
            qn = quaternion_from_matrix(R)
            pose = ts["geometry_msgs/msg/Pose"](
                position=ts["geometry_msgs/msg/Point"](x=t[0], y=t[1], z=t[2]),
                orientation=ts["geometry_msgs/msg/Quaternion"](x=qn[0], y=qn[1], z=qn[2], w=qn[3]))
            odom = ts["nav_msgs/msg/Odometry"](
                header=m.msg.header, child_frame_id="base_link",
                pose=ts["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
                twist=m.msg.twist)
            w.write(output_topic("odom"), m.stamp_ns, odom)
    return RunResult(out, mode, n_in, model, frame_seconds=[0.01] * n_in if mode == "offline" else [])


def test_scorer_reads_exactly_what_the_outputs_bag_holds(drive_bag, tmp_path):
    run = _fake_outputs(drive_bag, tmp_path / "outputs", depth_factor=0.9, drop_every=5)
    s = ScoreSettings(image="/camera/image_raw", gt_depth="/ground_truth/depth", gt_odom="/ground_truth/odom")
    m = score_run(drive_bag, run, tmp_path / "report", s)
    assert m["depth"]["mode"] == "metric"
    # |0.9 g − g| / g (0.9: nothing reaches the 80 m clip)
    assert m["depth"]["metrics"]["abs_rel"] == pytest.approx(0.1, abs=1e-5)
    assert m["depth"]["metrics"]["a1"] == pytest.approx(1.0)
    assert m["odometry"]["ate"]["se3"]["trans"]["rmse"] < 1e-6  # a rigid change of odom frame is aligned away
    assert m["counts"]["depth_out"] == 24 - 5 and m["counts"]["dropped_or_lost"] == 5
    assert m["headline"]["gt_path_length_m"] > 5
    # depth scale: GT / published = 1/0.9 on every frame; the rigidly moved odometry has scale error 0
    ds = m["depth_scale"]
    assert ds["ratio_median"] == pytest.approx(1 / 0.9, rel=1e-4) and ds["within_5pct"] == 0.0
    assert m["headline"]["depth_scale_error"] == pytest.approx(1 / 0.9 - 1, rel=1e-3)
    assert 0 < ds["frames_after_warmup"] < ds["frames"] == 24 - 5
    assert m["headline"]["odom_scale_error"] < 1e-6
    # median scaling removes a global factor entirely
    m2 = score_run(drive_bag, run, tmp_path / "report2",
                   ScoreSettings(image="/camera/image_raw", gt_depth="/ground_truth/depth", median_scaling=True))
    assert m2["depth"]["metrics"]["abs_rel"] < 1e-5
    assert "odometry: no --gt-odom topic given" in m2["skipped"]
    for f in ("report.html", "metrics.json", "trajectory.png", "sample_0.png", "latency.png"):
        assert (tmp_path / "report" / f).is_file(), f
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["headline"]["abs_rel"] == pytest.approx(
        0.1, abs=1e-5)


def _card(report: Path) -> str:
    return report.read_text().split('id="summary"')[1].split("</section>")[0]


def test_odometry_top_view_is_x_y_on_a_straight_drive(drive_bag, tmp_path, monkeypatch):
    """Odometry is REP 103/105 (x forward, y left, z up): its top view is x–y, also when the drive is straight
    and its height varies more than its sideways position (which the axes of largest spread turned into a
    side view, x–z)."""
    from depth_node.evaluate import report as R

    seen: list[tuple[int, int]] = []
    plot_axes = R.plot_axes
    monkeypatch.setattr(R, "plot_axes", lambda *a, **k: seen.append(plot_axes(*a, **k)) or seen[-1])
    run = _fake_outputs(drive_bag, tmp_path / "outputs", depth_factor=1.0)
    m = score_run(drive_bag, run, tmp_path / "report", ScoreSettings(
        image="/camera/image_raw", gt_depth="/ground_truth/depth", gt_odom="/ground_truth/odom"))
    gt = np.loadtxt(tmp_path / "report" / "odom_gt.tum")[:, 1:4]
    assert np.ptp(gt[:, 2]) > np.ptp(gt[:, 1]), "the drive is straight: it strays sideways less than it dips"
    assert m["odometry"]["gt_path_length"] > 5 and seen == [(0, 1)]
    t = np.linspace(0.0, 40.0, 41)
    straight = np.stack([t, 1e-4 * np.sin(t), 0.15 * np.sin(t / 7.0)], axis=1)  # z spread ≫ y spread
    assert plot_axes(straight, up=2) == (0, 1)


def test_card_names_the_loaded_model_the_parameters_set_and_the_full_period(drive_bag, tmp_path):
    """An online run names no model file (the node loads its default): the card shows the model the node's
    diagnostics report, the parameters that differ from the node's defaults, the node's own figures of the
    last full diagnostics period (not the partial last one), and the RPE row."""
    from depth_node.runtime.params import defaults

    model = "/opt/models/shipped_model_v3.pt"
    diag = dict(model=model, backend="openvino", precision="bf16", device="cpu")
    seq = [diagnostics_status(0.0, 0, **diag), diagnostics_status(4.0, 4, **diag),  # before, first (partial)
           diagnostics_status(10.0, 14, **diag), diagnostics_status(10.1, 24, **diag),  # full periods
           diagnostics_status(7.99, 24, **diag), diagnostics_status(0.0, 24, **diag)]  # last (partial), after
    run = _fake_outputs(drive_bag, tmp_path / "outputs", depth_factor=1.0, mode="online", model="", diagnostics=seq)
    params = {"model": "", "stride": 2, "autostart": defaults()["autostart"]}
    m = score_run(drive_bag, run, tmp_path / "report", ScoreSettings(
        image="/camera/image_raw", gt_depth="/ground_truth/depth", gt_odom="/ground_truth/odom"), params=params)
    assert m["run"]["model"] == model and m["run"]["node_params"] == {"stride": 2}
    assert m["node_diagnostics"]["input_rate_hz"] == "10.1" and m["node_diagnostics"]["frames_published"] == "24"
    card = _card(tmp_path / "report" / "report.html")
    assert "<th>model</th><td colspan=3>shipped_model_v3.pt" in card
    assert "<th>node parameters</th><td colspan=3>stride: 2</td>" in card and "autostart" not in card
    assert "<th>backend</th><td colspan=3>openvino bf16 cpu</td>" in card
    assert "input 10.10 Hz" in card and "7.99" not in card
    # RPE of a rigidly moved copy of the ground truth: zero, shown with its unit
    rpe = re.search(r"<th>odometry RPE translation \(RMSE, per frame step\)</th><td>([0-9.e+-]+) m</td>", card)
    assert rpe and float(rpe.group(1)) < 1e-6
    assert float(rpe.group(1)) == pytest.approx(m["odometry"]["rpe"]["se3"]["trans"]["rmse"], rel=1e-3, abs=1e-12)
    # with no model given, the runner reports the package's default model file (as the node resolves it)
    from depth_node.ros.bag_runner import default_model_path

    resolved = Path(default_model_path({"model": ""}))
    assert resolved.is_file() and resolved.parent.name in ("models", "default_onnx")


def test_offline_run_reports_its_backend_and_pipeline_time_not_latency(drive_bag, small_model_path, tmp_path,
                                                                      capsys):
    """`--offline` records what the frame core ran on (its backend, as the node's diagnostics would), and its
    timing is the in-process pipeline time per frame: never labelled latency or output rate."""
    from depth_node.commands.eval_bag import print_headline
    from depth_node.ros.bag_runner import run_offline

    params = {"model": str(small_model_path), "backend": "onnxruntime"}
    run = run_offline(drive_bag, tmp_path / "outputs", image="/camera/image_raw", camera_info=None, params=params,
                      progress=False)
    m = score_run(drive_bag, run, tmp_path / "report", ScoreSettings(image="/camera/image_raw",
                                                                     gt_depth="/ground_truth/depth"), params=params)
    assert m["node_diagnostics"]["backend"] == "onnxruntime"
    assert m["run"]["model"] == str(small_model_path) and m["run"]["node_params"] == {"backend": "onnxruntime"}
    h = m["headline"]
    assert h["latency_median_ms"] is None and h["output_rate_hz"] is None
    sec = np.array(run.frame_seconds) * 1e3
    assert h["pipeline_time_median_ms"] == pytest.approx(np.median(sec))
    assert h["pipeline_throughput_hz"] == pytest.approx(1e3 / sec.mean())
    card = _card(tmp_path / "report" / "report.html")
    assert re.search(r"<th>backend</th><td colspan=3>onnxruntime \w+ \w+</td>", card), card
    assert "pipeline time per frame" in card and "pipeline throughput" in card
    assert "latency" not in card and "output rate" not in card
    print_headline(m, tmp_path / "report")
    out = capsys.readouterr().out
    assert "pipeline time per frame" in out and "latency" not in out and "output rate" not in out


def test_latency_plot_marks_the_percentiles_the_json_gives():
    from depth_node.evaluate.bag_score import _stats
    from depth_node.evaluate.report import latency_markers

    lat = np.random.default_rng(3).gamma(4.0, 5.0, 200)
    marks = dict(latency_markers(lat))
    assert list(marks) == ["median", "p90", "p99"]
    want = np.percentile(lat, [50, 90, 99])
    assert [marks["median"], marks["p90"], marks["p99"]] == pytest.approx(list(want), rel=1e-12)
    st = _stats(lat)
    assert (st["median_ms"], st["p90_ms"], st["p99_ms"]) == pytest.approx(tuple(want), rel=1e-12)


def _bag_with_only_these_images(src: Path, dst: Path, image: str, stamps: set[int], info: str,
                                without_info: set[int]) -> Path:
    """A copy of `src` whose `image` topic keeps only the frames stamped `stamps` and whose `info` topic lacks
    the camera_info stamped `without_info` (every other topic whole): the input as the node saw it, so that the
    offline core sees exactly the sequence the node's core saw."""
    with BagReader(src) as r, BagWriter(dst) as w:
        for t, summary in r.topics.items():
            w.add_topic(t, summary.msgtype)
        for m in r.messages():
            stamp = stamp_to_ns(m.msg.header.stamp) if m.topic in (image, info) else None
            if (m.topic != image or stamp in stamps) and (m.topic != info or stamp not in without_info):
                w.write_raw(m.topic, m.stamp_ns, m.raw)
    return dst


def _k_by_stamp(bag: Path, topic: str) -> dict[int, np.ndarray]:
    with BagReader(bag) as r:
        return {stamp_to_ns(m.msg.header.stamp): np.array(m.msg.k, np.float64) for m in r.messages([topic])}


@pytest.mark.ros
def test_node_over_ros_matches_the_offline_pipeline(drive_bag, small_model_path, tmp_path):
    """The real node process (bag replayed over ROS 2) and `--offline` (the frame core fed in order) publish the
    same depth for the same frames. Latest-frame-wins may drop frames under load, and the scale source and the
    odometry carry state from frame to frame, so the offline run is fed exactly the frames the node accepted.
    A best-effort camera_info can be lost or come later than the node waits for it (before discovery settles,
    under load): the node then uses the configured intrinsics for that frame (its published camera_info says
    so), and the offline run gets that frame without its camera_info too."""
    common = ["--image", "/camera/image_raw", "--gt-depth", "/ground_truth/depth", "--gt-odom", "/ground_truth/odom",
              "--model", str(small_model_path), "-p", "backend:=onnxruntime"]
    # half speed (5 Hz): a 2-core CI machine keeps up, so the replay exercises transport rather than dropping
    on = subprocess.run([*CLI, "eval-bag", str(drive_bag), *common, "--domain-id", "160", "--rate", "0.5",
                         "--out", str(tmp_path / "on"), "--json", str(tmp_path / "on.json")],
                        env=_env(160), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert on.returncode == 0, on.stdout[-2000:] + on.stderr[-3000:]
    assert "report:" in on.stdout and "abs_rel" in on.stdout
    m_on = json.loads((tmp_path / "on.json").read_text())
    assert m_on["counts"]["depth_out"] >= 12, m_on["counts"]  # latest-frame-wins may drop a few under load
    assert m_on["timing"]["end_to_end_latency"]["n"] == m_on["counts"]["depth_out"]
    assert m_on["timing"]["output_rate_hz"] > 1
    assert m_on["node_diagnostics"].get("backend") == "onnxruntime"
    d_on = _depth_by_stamp(tmp_path / "on" / "outputs", output_topic(DEPTH_IMAGE))
    k_in = _k_by_stamp(drive_bag, "/camera/camera_info")
    k_on = _k_by_stamp(tmp_path / "on" / "outputs", output_topic(DEPTH_INFO))
    unpaired = {s for s in d_on if not np.allclose(k_on[s], k_in[s], rtol=1e-9)}
    paired = set(d_on) - unpaired
    assert len(paired) >= len(d_on) // 2, sorted(unpaired)  # the pairing itself is exercised
    accepted = _bag_with_only_these_images(drive_bag, tmp_path / "accepted", "/camera/image_raw", set(d_on),
                                           "/camera/camera_info", unpaired)
    off = subprocess.run([*CLI, "eval-bag", str(accepted), *common, "--offline", "--out", str(tmp_path / "off"),
                          "--json", str(tmp_path / "off.json")], env=_env(160), capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert off.returncode == 0, off.stderr[-3000:]
    assert json.loads((tmp_path / "off.json").read_text())["counts"]["depth_out"] == len(d_on)
    d_off = _depth_by_stamp(tmp_path / "off" / "outputs", output_topic(DEPTH_IMAGE))
    assert sorted(d_off) == sorted(d_on)
    for s in sorted(d_on):
        np.testing.assert_allclose(d_on[s], d_off[s], rtol=1e-5, equal_nan=True, err_msg=f"frame stamped {s}")
    with BagReader(tmp_path / "on" / "outputs") as r:
        assert r.topics[output_topic("points")].count == len(d_on)
        assert r.topics[output_topic("odom")].count == len(d_on)


def test_eval_bag_rejects_a_missing_topic_with_the_topics_it_has(drive_bag, tmp_path):
    p = subprocess.run([*CLI, "eval-bag", str(drive_bag), "--image", "/cam/typo", "--offline", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, cwd=REPO, env=_env(161))
    assert p.returncode == 2
    assert "/cam/typo" in p.stderr and "/camera/image_raw" in p.stderr
    p = subprocess.run([*CLI, "eval-bag", str(drive_bag), "--image", "/camera/image_raw", "-p", "stride:=-3",
                        "--offline", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, cwd=REPO, env=_env(161))
    assert p.returncode == 2 and "stride" in p.stderr


def test_ground_truth_topics_are_checked_before_the_run(drive_bag) -> None:
    check_ground_truth_topics(drive_bag, "/ground_truth/depth", "/ground_truth/odom")
    with pytest.raises(DepthNodeError, match=r"no topic /ground_truth/dpeth \(--gt-depth\).*/ground_truth/depth"):
        check_ground_truth_topics(drive_bag, "/ground_truth/dpeth", None)
    with pytest.raises(DepthNodeError, match=r"/ground_truth/odom \(--gt-depth\) is nav_msgs/msg/Odometry"):
        check_ground_truth_topics(drive_bag, "/ground_truth/odom", None)
    with pytest.raises(DepthNodeError, match=r"/camera/image_raw \(--gt-odom\) is sensor_msgs/msg/Image"):
        check_ground_truth_topics(drive_bag, None, "/camera/image_raw")


@pytest.mark.slow
@pytest.mark.ros
def test_demo_end_to_end_on_a_short_drive(request, tmp_path):
    """`make demo`'s command on a short drive: the shipped default model when installed, else the small one."""
    default = REPO / "models" / "default.pt"
    model = [] if default.is_file() else ["--model", str(request.getfixturevalue("small_model_path"))]
    out = tmp_path / "demo"
    p = subprocess.run([*CLI, "demo", "--out", str(out), "--frames", "30", "--domain-id", "162", *model],
                       env=_env(162), capture_output=True, text=True, timeout=420, cwd=REPO)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["acceptance"]) == {"abs_rel", "ate_se3_pct_of_path"}
    assert m["run"]["mode"] == "online" and m["counts"]["depth_out"] >= 15
    assert m["headline"]["abs_rel"] is not None and m["headline"]["ate_se3_pct_of_path"] is not None
    html = (out / "report.html").read_text()
    for needle in ("trajectory", "latency", "point cloud", "ground truth"):
        assert needle in html
    assert (out / "outputs" / "metadata.yaml").is_file() and (out / "cloud.png").is_file()
    assert f"report: {out / 'report.html'}" in p.stdout
    assert "demo: node and replay on ROS_DOMAIN_ID=162" in p.stdout and "eval-bag:" not in p.stdout
    assert re.search(r"acceptance: odometry ATE \(SE\(3\)\): [0-9.e+-]+ % of path \(limit ≤ 5 % of path\): "
                     r"(PASS|FAIL)", p.stdout), p.stdout
    assert "<th>model</th><td colspan=3>n/a" not in html and "stride: 2" in html
    if default.is_file():  # the shipped model's acceptance figures on the held-out drive (issues 6, 16)
        acc = m["acceptance"]
        print(f"demo acceptance: {acc}")
        assert acc["abs_rel"]["pass"] and acc["ate_se3_pct_of_path"]["pass"], acc
        # the limits of `depth-node demo`'s docstring, not as the command reports them: abs_rel ≤ 0.12, ATE ≤ 5 %
        assert acc["abs_rel"]["value"] <= 0.12 and acc["ate_se3_pct_of_path"]["value"] <= 5.0, acc
        assert m["headline"]["ate_se3_pct_of_path"] == acc["ate_se3_pct_of_path"]["value"]
