"""The camera model a camera_info gives the node (runtime/intrinsics.camera_model): P for rectified input,
ROI and binning on the image's pixel grid, and undistortion of raw images (runtime/rectify.Rectifier) against
a lens rendered independently (sim/writers.Distorter). Expected K values are computed by hand from the
sensor_msgs/CameraInfo definitions (K/P for the full sensor; the image is the ROI, then binned)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from depth_node.geometry.camera import Intrinsics
from depth_node.runtime.intrinsics import camera_model
from depth_node.runtime.rectify import Rectifier
from depth_node.runtime.topics import is_rectified_topic
from depth_node.sim.writers import Distorter

K = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
P = [450.0, 0.0, 310.0, 0.0, 0.0, 455.0, 235.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def info(d=(), p=(0.0,) * 12, roi=(0, 0, 0, 0), binning=(0, 0), model="plumb_bob", w=640, h=480):
    x, y, rw, rh = roi
    return SimpleNamespace(k=K, p=list(p), d=list(d), r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], distortion_model=model,
                           width=w, height=h, binning_x=binning[0], binning_y=binning[1],
                           roi=SimpleNamespace(x_offset=x, y_offset=y, width=rw, height=rh))


def intr(cam) -> tuple[float, ...]:
    i = cam.intrinsics
    return (i.fx, i.fy, i.cx, i.cy, i.width, i.height)


def test_rectified_input_uses_p_not_k() -> None:
    cam, why = camera_model(info(p=P), 640, 480)
    assert why == "" and not cam.undistort
    assert intr(cam) == (450.0, 455.0, 310.0, 235.0, 640, 480)
    cam, _ = camera_model(info(), 640, 480)  # P unset (all zero): K
    assert intr(cam) == (500.0, 500.0, 320.0, 240.0, 640, 480)


def test_roi_shifts_the_principal_point() -> None:
    cam, why = camera_model(info(roi=(100, 50, 320, 240)), 320, 240)
    assert why == "" and cam.note == ""
    assert intr(cam) == (500.0, 500.0, 220.0, 190.0, 320, 240)


def test_binning_divides_k_and_roi_then_binning() -> None:
    cam, _ = camera_model(info(binning=(2, 2)), 320, 240)
    assert intr(cam) == (250.0, 250.0, 160.0, 120.0, 320, 240)
    cam, _ = camera_model(info(roi=(100, 50, 320, 240), binning=(2, 2)), 160, 120)
    assert intr(cam) == (250.0, 250.0, 110.0, 95.0, 160, 120)
    cam, _ = camera_model(info(binning=(2, 1)), 320, 480)  # x only
    assert intr(cam) == (250.0, 500.0, 160.0, 240.0, 320, 480)


def test_distortion_choice_follows_rectify_and_the_model() -> None:
    d = (-0.3, 0.1, 0.0, 0.0, 0.0)
    auto, _ = camera_model(info(d=d, p=P), 640, 480, "auto")
    assert auto.undistort and intr(auto) == (450.0, 455.0, 310.0, 235.0, 640, 480)  # onto P's grid
    assert auto.K == tuple(K) and auto.D == d
    off, _ = camera_model(info(d=d, p=P), 640, 480, "false")
    assert not off.undistort and "rectify is false" in off.ignored_distortion and intr(off)[:4] == (500, 500, 320, 240)
    odd, _ = camera_model(info(d=d, model="weird_lens"), 640, 480, "true")
    assert not odd.undistort and "weird_lens" in odd.ignored_distortion
    fish, _ = camera_model(info(d=(0.1, 0.01, 0.0, 0.0), model="equidistant"), 640, 480, "auto")
    assert fish.undistort and fish.distortion_model == "equidistant"
    bad, why = camera_model(info(d=d), 320, 240, "auto")  # an undistorted image needs its own camera_info
    assert bad is None and "320x240" in why


def test_an_image_rect_topic_is_not_undistorted_again() -> None:
    """image_proc publishes image_rect with the camera's own camera_info (raw D included); its consumers take P."""
    d = (-0.3, 0.1, 0.0, 0.0, 0.0)
    cam, why = camera_model(info(d=d, p=P), 640, 480, "rectified")
    assert why == "" and not cam.undistort and not cam.ignored_distortion
    assert intr(cam) == (450.0, 455.0, 310.0, 235.0, 640, 480)
    cam, _ = camera_model(info(d=d), 640, 480, "rectified")  # P unset: K
    assert intr(cam) == (500.0, 500.0, 320.0, 240.0, 640, 480)
    for topic in ("/cam/image_rect", "image_rect_color", "/front/image_rect/compressed", "/a/b/image_rect_mono"):
        assert is_rectified_topic(topic), topic
    for topic in ("image", "/cam/image_raw", "/cam/image_color/compressed", "/image_rect/raw", "/rect/image", ""):
        assert not is_rectified_topic(topic), topic


def _scene(w: int, h: int) -> np.ndarray:
    """A smooth colour pattern: interpolation error stays small, misplacement does not."""
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    r = 127 + 120 * np.sin(u / 9.0) * np.cos(v / 11.0)
    g = 127 + 120 * np.cos(u / 13.0 + v / 17.0)
    return np.stack([r, g, 255 * u / w], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("d", [(-0.3, 0.1, 0.0, 0.0, 0.0), (0.2, -0.05, 0.001, -0.002, 0.0)])
def test_rectifier_undoes_a_rendered_plumb_bob_lens(d) -> None:
    w, h = 320, 240
    pin = Intrinsics(260.0, 262.0, 158.0, 121.0, w, h)
    scene = _scene(w, h)
    distorted = Distorter(pin, np.array(d))(scene)
    i = SimpleNamespace(k=list(pin.K.reshape(-1)), p=[0.0] * 12, d=list(d), r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                        distortion_model="plumb_bob", width=w, height=h, binning_x=0, binning_y=0, roi=None)
    cam, _ = camera_model(i, w, h, "auto")
    rect = Rectifier()
    out = rect(distorted, cam)
    inner = (slice(h // 6, -h // 6), slice(w // 6, -w // 6))
    err = np.abs(out[inner].astype(float) - scene[inner]).mean()
    before = np.abs(distorted[inner].astype(float) - scene[inner]).mean()
    assert err < 2.5 and before > 4 * err, (err, before)
    rect(distorted, cam)
    assert rect.built == 1  # maps cached per camera model


def test_one_rule_pairs_an_image_topic_with_its_camera_info() -> None:
    """image_transport's pairing (camera_info beside the base topic, a transport suffix dropped), then one level
    up, then the only CameraInfo there is: eval-bag, its report and the training bag source use this one rule."""
    from depth_node.runtime.topics import camera_info_topic

    infos = ["/cam/camera_info", "/other/camera_info"]
    assert camera_info_topic("/cam/image_raw", infos) == "/cam/camera_info"
    assert camera_info_topic("/cam/image_raw/compressed", infos) == "/cam/camera_info"
    assert camera_info_topic("/cam/rect/image", infos) == "/cam/camera_info"
    assert camera_info_topic("/front/image", infos) is None  # two candidates, neither beside it
    assert camera_info_topic("/front/image", ["/x/camera_info"]) == "/x/camera_info"
    assert camera_info_topic("/front/image", []) is None
