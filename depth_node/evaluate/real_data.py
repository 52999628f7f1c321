"""Real frames with depth ground truth, each set read with its own camera, and a model's scores on them: the
"real-data table" of the model cards (`depth-node eval-real`).

The sets are the ones in ``../shared/realdata`` that carry metric depth GT (their READMEs give sources,
licences and the decoding used here):

- `kitti_raw_lidar`: KITTI raw 2011_09_26_drive_0001, image_02 frames 0–7; GT: Velodyne projected into
  image_02 (`derived/`); K: `P_rect_02` on an `S_rect_02` image (calib_cam_to_cam.txt).
- `kitti_annotated`: the same drive, frames 5, 50, 100; GT: the KITTI depth benchmark's semi-dense
  annotation; K: the same calibration (not the json's `cam_in`, which belongs to another day).
- `tri_dgp`: TRI DGP test scenes, every camera of every sample; GT: LiDAR projected with the datums' world
  poses; K: each scene's calibration json.
- `tum_fr3`: TUM fr3 long_office_household, 1 frame; GT: Kinect depth (÷5000, registered); K: fr3's
  published values (quoted in the README; the folder has no calibration file).
- `nyu`: NYU v2 frames of the Metric3D (3) and UniDepth (1) demos; GT: Kinect depth (÷1000, registered);
  K: the json's `cam_in` / `intrinsics.npy`.

Left out on purpose: the raw NYU frame (depth not registered to RGB) and SUN RGB-D (no intrinsics).

EVALUATION ONLY: these frames are third-party data under non-commercial licences. They must never be used
for training, and render or training settings must never be chosen by these scores — otherwise the table
stops measuring how a model transfers to cameras and scenes it never saw.

Every set is scored twice with the Monodepth2 metrics of `depth_metrics`: `metric` (the model's depth taken
as metres) and `median` (per-image median scaling: the shape of the depth, independent of its scale).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.geometry.camera import Intrinsics, project
from depth_node.geometry.poses import invert_se3, matrix_from_quaternion
from depth_node.io.depth_files import (
    KITTI_DEPTH_SCALE,
    NYU_DEPTH_SCALE,
    TUM_DEPTH_SCALE,
    read_calib_file,
    read_depth_png,
)
from depth_node.io.image_files import load_rgb

REALDATA_ENV = "DEPTH_NODE_REALDATA"
KITTI_DIR = "kitti_raw_2011_09_26_drive_0001"
KITTI_SYNC = "2011_09_26/2011_09_26_drive_0001_sync"
TRI_DIR = "tri_dgp_test_scene"
RGBD_DIR = "rgbd_single_frames"
# TUM fr3 colour camera (TUM website, quoted in rgbd_single_frames/README.md); the folder ships no calibration.
TUM_FR3_K = (535.4, 539.2, 320.1, 247.6)


class RealDataError(DepthNodeError):
    """A real-data folder that is missing or not laid out as its README describes."""


@dataclass
class RealFrame:
    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    gt: np.ndarray  # (H, W) float32 metres, 0 = no GT
    intrinsics: Intrinsics  # of rgb (and gt: both on the same pixel grid)


@dataclass(frozen=True)
class FrameRef:
    """One frame, not yet read: intrinsics are known from the calibration alone, pixels load on demand."""

    name: str
    image: Path
    intrinsics: Intrinsics
    read_gt: Callable[[], np.ndarray]

    def load(self) -> RealFrame:
        rgb = np.array(load_rgb(self.image))  # writable: torch wants it
        gt = self.read_gt()
        h, w = rgb.shape[:2]
        if gt.shape != (h, w) or (self.intrinsics.width, self.intrinsics.height) != (w, h):
            raise RealDataError(
                f"{self.image}: image {w}x{h}, GT {gt.shape[1]}x{gt.shape[0]} and calibration "
                f"{self.intrinsics.width}x{self.intrinsics.height} disagree; is the folder intact?")
        return RealFrame(self.name, rgb, gt, self.intrinsics)


@dataclass(frozen=True)
class RealSet:
    name: str
    title: str
    group: str  # "driving" or "indoor": rows averaged over a group's images are reported too
    min_depth: float
    max_depth: float
    crop: str  # depth_metrics crop
    frames: list[FrameRef] = field(default_factory=list)

    def describe(self) -> dict:
        k = self.frames[0].intrinsics if self.frames else None
        return {
            "title": self.title, "group": self.group, "frames": len(self.frames),
            "depth_range_m": [self.min_depth, self.max_depth], "crop": self.crop,
            "image_size": [k.width, k.height] if k else None,
            "fx": sorted({round(f.intrinsics.fx, 4) for f in self.frames}),
        }


# ---------------------------------------------------------------- where the data is


def default_root() -> Path | None:
    """$DEPTH_NODE_REALDATA, else realdata/ in $DEPTH_NODE_SHARED, else ../shared/realdata beside the source
    checkout or beside the working directory; None when none exists."""
    cands = []
    if os.environ.get(REALDATA_ENV):
        cands.append(Path(os.environ[REALDATA_ENV]))
    if os.environ.get("DEPTH_NODE_SHARED"):
        cands.append(Path(os.environ["DEPTH_NODE_SHARED"]) / "realdata")
    cands += [Path(__file__).resolve().parents[3] / "shared" / "realdata", Path.cwd().parent / "shared" / "realdata"]
    return next((c for c in cands if c.is_dir()), None)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception as exc:
        raise RealDataError(f"cannot read image {path}: {exc}") from exc


def _kitti_intrinsics(root: Path) -> Intrinsics:
    """Camera 2 (left colour, rectified) of the drive's day: P_rect_02 on an S_rect_02 image."""
    calib = read_calib_file(root / KITTI_DIR / "2011_09_26" / "calib_cam_to_cam.txt")
    if "P_rect_02" not in calib or "S_rect_02" not in calib:
        raise RealDataError(f"{root / KITTI_DIR}: calib_cam_to_cam.txt lacks P_rect_02/S_rect_02")
    P = calib["P_rect_02"].reshape(3, 4)
    w, h = calib["S_rect_02"].astype(int)
    return Intrinsics(P[0, 0], P[1, 1], P[0, 2], P[1, 2], int(w), int(h))


def _png_gt(path: Path, units_per_metre: float) -> Callable[[], np.ndarray]:
    return lambda: read_depth_png(path, units_per_metre)


# ---------------------------------------------------------------- KITTI


def kitti_raw_lidar(root: Path) -> RealSet:
    """image_02 frames with Velodyne depth (derived/velodyne_depth_image_02: nearest point per pixel)."""
    base = root / KITTI_DIR
    intr = _kitti_intrinsics(root)
    gt_dir = base / "derived" / "velodyne_depth_image_02"
    refs = [FrameRef(f"kitti_{p.stem}", base / KITTI_SYNC / "image_02" / "data" / p.name, intr,
                     _png_gt(p, KITTI_DEPTH_SCALE)) for p in sorted(gt_dir.glob("*.png"))]
    return RealSet("kitti_raw_lidar", "KITTI raw 2011_09_26_drive_0001, Velodyne GT (Garg crop, < 80 m)",
                   "driving", 1e-3, 80.0, "garg", refs)


def kitti_annotated(root: Path) -> RealSet:
    """Frames of the same drive with the depth benchmark's annotated (semi-dense) GT."""
    base = root / KITTI_DIR
    intr = _kitti_intrinsics(root)
    refs = []
    for p in sorted((base / "metric3d_kitti_demo" / "depth_annotated_gt").glob("*.png")):
        img = base / "metric3d_kitti_demo" / "rgb" / p.name
        if not img.is_file():  # frame 5 is stored once, in the raw drive
            img = base / KITTI_SYNC / "image_02" / "data" / p.name
        refs.append(FrameRef(f"kitti_ann_{p.stem}", img, intr, _png_gt(p, KITTI_DEPTH_SCALE)))
    return RealSet("kitti_annotated", "KITTI depth benchmark annotated GT, same drive (Garg crop, < 80 m)",
                   "driving", 1e-3, 80.0, "garg", refs)


# ---------------------------------------------------------------- TRI DGP


def _dgp_pose(p: dict) -> np.ndarray:
    q, t = p["rotation"], p["translation"]
    T = np.eye(4)
    T[:3, :3] = matrix_from_quaternion([q["qx"], q["qy"], q["qz"], q["qw"]])
    T[:3, 3] = [t["x"], t["y"], t["z"]]
    return T


def lidar_depth_image(points: np.ndarray, T_cam_lidar: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """Sparse z-depth image from LiDAR points (N, ≥3) in the LiDAR frame: each point goes to the pixel whose
    centre is nearest its projection; where several land on one pixel the nearest wins (no see-through)."""
    xyz = points[:, :3] @ T_cam_lidar[:3, :3].T + T_cam_lidar[:3, 3]
    xyz = xyz[xyz[:, 2] > 0]
    uv, z = project(xyz, intr)
    u, v = np.rint(uv[:, 0]).astype(np.int64), np.rint(uv[:, 1]).astype(np.int64)
    ok = (u >= 0) & (u < intr.width) & (v >= 0) & (v < intr.height)
    u, v, z = u[ok], v[ok], z[ok]
    order = np.argsort(-z)  # far first, so the nearest point is written last
    depth = np.zeros((intr.height, intr.width), np.float32)
    depth[v[order], u[order]] = z[order]
    return depth


def _dgp_scene_frames(scene_json: Path) -> list[FrameRef]:
    scene_dir = scene_json.parent
    scene = json.loads(scene_json.read_text())
    data = {d["key"]: d for d in scene["data"]}
    refs = []
    for k, sample in enumerate(scene["samples"]):
        calib = json.loads((scene_dir / "calibration" / f"{sample['calibration_key']}.json").read_text())
        intr_of = dict(zip(calib["names"], calib["intrinsics"]))
        datums = [data[key] for key in sample["datum_keys"]]
        lidar = next(d["datum"]["point_cloud"] for d in datums if "point_cloud" in d["datum"])
        T_world_lidar = _dgp_pose(lidar["pose"])
        for d in datums:
            if "image" not in d["datum"]:
                continue
            img, cam = d["datum"]["image"], d["id"]["name"]
            ci = intr_of[cam]
            intr = Intrinsics(ci["fx"], ci["fy"], ci["cx"], ci["cy"], int(img["width"]), int(img["height"]))
            # world poses of both datums: also corrects the ~10 ms between the LiDAR sweep and the exposure
            T_cam_lidar = invert_se3(_dgp_pose(img["pose"])) @ T_world_lidar
            npz = scene_dir / lidar["filename"]

            def read_gt(npz=npz, T=T_cam_lidar, intr=intr) -> np.ndarray:
                with np.load(npz) as z:
                    return lidar_depth_image(np.asarray(z["data"], np.float64), T, intr)

            refs.append(FrameRef(f"{scene_dir.name}_{k}_{cam}", scene_dir / img["filename"], intr, read_gt))
    return refs


def tri_dgp(root: Path) -> RealSet:
    refs = []
    for scene_dir in sorted(p for p in (root / TRI_DIR).glob("scene_*") if p.is_dir()):
        for scene_json in sorted(scene_dir.glob("scene_*.json")):
            refs += _dgp_scene_frames(scene_json)
    return RealSet("tri_dgp", "TRI DGP test scenes, all cameras, LiDAR GT (< 80 m)", "driving", 1e-3, 80.0,
                   "none", refs)


# ---------------------------------------------------------------- indoor RGB-D


def tum_fr3(root: Path) -> RealSet:
    base = root / RGBD_DIR / "tum_fr3_long_office_household"
    img = base / "TUM_color.png"
    w, h = _image_size(img)
    intr = Intrinsics(*TUM_FR3_K, w, h)
    refs = [FrameRef("tum_fr3_office", img, intr, _png_gt(base / "TUM_depth.png", TUM_DEPTH_SCALE))]
    return RealSet("tum_fr3", "TUM RGB-D fr3 long_office_household (< 10 m)", "indoor", 1e-3, 10.0, "none", refs)


def nyu(root: Path) -> RealSet:
    refs = []
    base = root / RGBD_DIR / "nyu_metric3d_demo"
    ann = json.loads((base / "test_annotations_as_published.json").read_text())
    for entry in ann["files"]:
        img = base / "rgb" / Path(entry["rgb"]).name
        w, h = _image_size(img)
        intr = Intrinsics(*(float(v) for v in entry["cam_in"]), w, h)
        refs.append(FrameRef(f"nyu_{img.stem}", img, intr,
                             _png_gt(base / "depth" / Path(entry["depth"]).name, float(entry["depth_scale"]))))
    ud = root / RGBD_DIR / "nyu_unidepth_demo"
    w, h = _image_size(ud / "rgb.png")
    refs.append(FrameRef("nyu_unidepth", ud / "rgb.png", Intrinsics.from_K(np.load(ud / "intrinsics.npy"), w, h),
                         _png_gt(ud / "depth.png", NYU_DEPTH_SCALE)))
    return RealSet("nyu", "NYU Depth v2 frames (Metric3D + UniDepth demos, < 10 m)", "indoor", 1e-3, 10.0, "none",
                   refs)


LOADERS: dict[str, Callable[[Path], RealSet]] = {
    "kitti_raw_lidar": kitti_raw_lidar,
    "kitti_annotated": kitti_annotated,
    "tri_dgp": tri_dgp,
    "tum_fr3": tum_fr3,
    "nyu": nyu,
}


def load_sets(root: Path, names: list[str] | None = None) -> list[RealSet]:
    """The named sets (default: all) found under `root`; a missing or malformed set is an error naming it."""
    root = Path(root)
    if not root.is_dir():
        raise RealDataError(f"no real-data folder at {root}; pass --data-root (the shared realdata/ folder)")
    unknown = sorted(set(names or []) - set(LOADERS))
    if unknown:
        raise RealDataError(f"unknown real set(s) {', '.join(unknown)}; choose from {', '.join(LOADERS)}")
    sets = []
    for name in names or list(LOADERS):
        try:
            s = LOADERS[name](root)
        except (OSError, KeyError, ValueError, StopIteration, DepthNodeError) as exc:
            why = str(exc) if isinstance(exc, DepthNodeError) else f"{type(exc).__name__}: {exc}"
            raise RealDataError(f"{name}: cannot read it under {root} ({why}); is the folder complete (see its "
                                "README)?") from exc
        if not s.frames:
            raise RealDataError(f"{name}: no frames with GT under {root}")
        sets.append(s)
    return sets


def iter_frames(s: RealSet, limit: int = 0) -> Iterator[RealFrame]:
    for ref in s.frames[: limit or None]:
        yield ref.load()


# ---------------------------------------------------------------- scoring

SCALINGS = ("metric", "median")


@dataclass
class EvalRealOptions:
    model: Path
    json: Path
    html: Path | None = None
    root: Path | None = None  # None: default_root()
    sets: list[str] | None = None  # None: all
    limit: int = 0  # frames per set (0 = all)
    samples: int = 1  # HTML panels per set
    backend: str = "auto"
    precision: str = "auto"
    device: str = "auto"


def _row(name: str, scaling: str, res) -> dict:
    """One table row: the contract's keys first (abs_rel, a1, scaling, frames), then the other metrics."""
    m = res.metrics
    row = {"dataset": name, "scaling": scaling, "frames": res.n_images, "abs_rel": m["abs_rel"], "a1": m["a1"]}
    row.update({k: v for k, v in m.items() if k not in row})
    if scaling == "median":
        row["ratio_median"], row["ratio_std"] = res.ratio_median, res.ratio_std
    return row


def _evaluators(s: RealSet) -> dict[str, object]:
    from depth_node.evaluate.depth_metrics import DepthEvalSettings, DepthEvaluator

    return {sc: DepthEvaluator(DepthEvalSettings(median_scaling=sc == "median", min_depth=s.min_depth,
                                                 max_depth=s.max_depth, crop=s.crop, boundary=False))
            for sc in SCALINGS}


def score_sets(estimator, sets: list[RealSet], limit: int = 0, panel_dir: Path | None = None,
               samples: int = 1) -> tuple[dict, list[tuple[str, Path]]]:
    """Scores of `estimator` (a DepthEstimator) on every set, metric and median-scaled, plus group rows
    (all images of a group's sets averaged together); sample panels go to `panel_dir` when given."""
    from depth_node.evaluate.depth_metrics import gt_mask
    from depth_node.evaluate.report import depth_panel, depth_range, panel_legend, save_png

    datasets: dict[str, dict] = {}
    table: list[dict] = []
    groups: dict[str, list[RealSet]] = {}
    per_image: dict[tuple[str, str], list] = {}  # (group, scaling) → per-image results of its sets
    images: list[tuple[str, Path]] = []
    for s in sets:
        evs = _evaluators(s)
        groups.setdefault(s.group, []).append(s)
        n = min(len(s.frames), limit) if limit else len(s.frames)
        shown = set(np.linspace(0, n - 1, min(samples, n)).round().astype(int).tolist()) if panel_dir else set()
        for k, fr in enumerate(iter_frames(s, limit)):
            pred = estimator.depth(fr.rgb, fr.intrinsics, out_size=fr.gt.shape).depth
            res = {sc: ev.add(fr.gt, pred, fr.name) for sc, ev in evs.items()}
            if k in shown:
                mask = gt_mask(fr.gt, s.min_depth, s.max_depth, s.crop)
                path = save_png(panel_dir / f"{s.name}_{k:03d}.png",
                                depth_panel(fr.rgb, pred, fr.gt, mask, max_depth=s.max_depth))
                ab = {sc: r.errors.get("abs_rel", float("nan")) for sc, r in res.items()}
                legend = panel_legend(depth_range(pred, fr.gt, s.max_depth))
                images.append((f"{s.name} / {fr.name} (fx {fr.intrinsics.fx:.1f} px): image | prediction (metric) "
                               f"| GT | relative error; {legend}; abs_rel metric {ab['metric']:.3f}, "
                               f"median-scaled {ab['median']:.3f}", path))
        rows = {}
        for sc, ev in evs.items():
            rows[sc] = _row(s.name, sc, ev.result())
            per_image.setdefault((s.group, sc), []).extend(r for r in ev.per_image if r.errors)
        datasets[s.name] = {**s.describe(), **rows}
        table += rows.values()
    group_rows = {g: {"sets": [s.name for s in members],
                      **{sc: _group_row(g, sc, per_image.get((g, sc), [])) for sc in SCALINGS}}
                  for g, members in groups.items()}
    return {"datasets": datasets, "groups": group_rows, "table": table}, images


def _group_row(group: str, scaling: str, results: list) -> dict:
    """A group's row: every image of its sets weighs the same (each set keeps its own crop and depth range)."""
    from depth_node.evaluate.depth_metrics import METRICS

    mean = {k: float(np.mean([r.errors[k] for r in results])) if results else float("nan") for k in METRICS}
    row = {"dataset": group, "scaling": scaling, "frames": len(results), "abs_rel": mean["abs_rel"], "a1": mean["a1"]}
    row.update({k: v for k, v in mean.items() if k not in row})
    return row


NOTE = ("Real frames for EVALUATION ONLY (third-party data, non-commercial licences): never train on them and "
        "never choose render or training settings by these scores.")


def eval_real(opts: EvalRealOptions) -> dict:
    """Score a model file on the real sets; write the JSON (and the HTML page); return what the JSON holds.
    The HTML page is one file: the results table in its summary card, the sample panels embedded in it."""
    import tempfile
    import time

    from depth_node.evaluate.report import write_html_report, write_json
    from depth_node.inference.estimator import DepthEstimator
    from depth_node.inference.factory import create_backend

    if not Path(opts.model).is_file():
        raise DepthNodeError(f"model file not found: {opts.model}")
    root = opts.root or default_root()
    if root is None:
        raise RealDataError(f"no real-data folder found (looked at ${REALDATA_ENV}, $DEPTH_NODE_SHARED/realdata "
                            "and ../shared/realdata); pass --data-root DIR")
    sets = load_sets(root, opts.sets)
    est = DepthEstimator(create_backend(Path(opts.model), opts.backend, opts.precision, opts.device))
    with tempfile.TemporaryDirectory(prefix="eval_real_panels_") as tmp:
        # panels only live until the page embeds them: the page is the one file to keep
        panel_dir = Path(tmp) if opts.html else None
        t0 = time.perf_counter()
        out, images = score_sets(est, sets, opts.limit, panel_dir, opts.samples)
        out = {
            "note": NOTE,
            "model": {"file": str(opts.model), "arch": est.info.arch, "input": [est.height, est.width],
                      "metric": est.metric, "scale": est.info.scale, "digest": est.info.digest,
                      "backend": est.backend.name, "precision": est.backend.precision,
                      "device": getattr(est.backend, "device", None)},
            "data_root": str(root),
            **out,
            "timing": {"total_s": time.perf_counter() - t0},
        }
        write_json(opts.json, out)
        if opts.html:
            notes = [NOTE, "Each set uses its own intrinsics; 'metric' takes the model's depth as metres, 'median' "
                     "scales each image by median(GT)/median(prediction). Group rows average every image of "
                     "their sets."]
            shown = {k: v for k, v in out.items() if k != "table"}  # the table repeats `datasets` and `groups`
            write_html_report(opts.html, f"eval-real: {Path(opts.model).name}", shown, images, notes,
                              facts=html_facts(out), table=results_table(out))
    return out


def _fx_text(fx: list[float]) -> str:
    if not fx:
        return "n/a"
    return f"{fx[0]:.1f}" if len(fx) == 1 else f"{min(fx):.0f}–{max(fx):.0f} ({len(fx)} values)"


def results_table(result: dict):
    """The per-set table of the HTML page's summary card: set, frames, fx, then metric and median-scaled
    abs_rel / δ<1.25 / rmse (m); the group rows after the sets."""
    from depth_node.evaluate.report import SummaryTable

    rows = []
    for name, d in result["datasets"].items():
        rows.append([f"{name}: {d['title']}", d["metric"]["frames"], _fx_text(d.get("fx", [])),
                     *(d[sc][k] for sc in SCALINGS for k in ("abs_rel", "a1", "rmse"))])
    for g, d in result["groups"].items():
        rows.append([f"{g} (all images of {', '.join(d['sets'])})", d["metric"]["frames"], "",
                     *(d[sc][k] for sc in SCALINGS for k in ("abs_rel", "a1", "rmse"))])
    return SummaryTable(("set", "frames", "fx [px]", "metric abs_rel", "metric δ<1.25", "metric rmse [m]",
                         "median abs_rel", "median δ<1.25", "median rmse [m]"), rows,
                        "metric: the model's depth as metres; median: each image scaled by median(GT)/median(pred)")


def html_facts(result: dict) -> dict[str, str]:
    m = result["model"]
    return {"model": f"{Path(m['file']).name} ({m['arch']}, input {m['input'][1]}×{m['input'][0]}, "
                     f"{'metric' if m['metric'] else 'relative'} depth, digest {m['digest']})",
            "backend": " ".join(str(m[k]) for k in ("backend", "precision", "device") if m.get(k)),
            "data": result["data_root"]}


def format_table(result: dict) -> str:
    """The table as text (one line per set and scaling, then the groups)."""
    lines = [f"{'dataset':<16} {'scaling':<7} {'frames':>6} {'abs_rel':>8} {'a1':>7} {'rmse':>8}"]
    rows = list(result["table"]) + [r for g in result["groups"].values() for r in (g["metric"], g["median"])]
    for r in rows:
        lines.append(f"{r['dataset']:<16} {r['scaling']:<7} {r['frames']:>6} {r['abs_rel']:8.3f} {r['a1']:7.3f} "
                     f"{r['rmse']:8.3f}")
    return "\n".join(lines)
