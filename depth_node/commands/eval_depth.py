"""`depth-node eval-depth --model FILE --data DIR --json PATH`: depth metrics of a model against ground truth."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_node.errors import DepthNodeError
from depth_node.image_files import image_files

log = logging.getLogger(__name__)

DESCRIPTION = """\
Depth metrics of a model on frames with ground-truth depth, computed as Monodepth2's evaluate_depth.py does:
prediction resized to the GT size (inverse depth interpolated), GT masked to min < gt < max (+ optional
Garg/Eigen crop), per-image median scaling (or metric: none), prediction clamped to [min, max], abs_rel sq_rel
rmse rmse_log a1 a2 a3 per image, averaged over images. With dense GT (synthetic drives) the scale-invariant
boundary F1 (Depth Pro) is reported too.

Data: --data DIR, a KITTI-raw folder (as `depth-node synth` writes it: gt_depth/image_02/*.npy, or real KITTI
with proj_depth/groundtruth PNGs; intrinsics from calib_cam_to_cam.txt), or --images DIR --gt-depth DIR with
matching file stems. GT depth: .npy in metres, or KITTI's uint16 PNG (metres × 256, 0 = no GT)."""



def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="model file (.pt) or exported depth.onnx")
    src = p.add_argument_group("data (either --data, or --images with --gt-depth)")
    src.add_argument("--data", type=Path, default=None, help="KITTI-raw folder (root or *_sync drive) with GT depth")
    src.add_argument("--images", type=Path, default=None, help="folder of RGB images")
    src.add_argument("--gt-depth", type=Path, default=None, help="folder of GT depth (.npy metres / KITTI PNG)")
    src.add_argument("--fx", type=float, default=None,
                     help="focal length [px] of the images when the data carries no calibration (metric models)")
    p.add_argument("--json", type=Path, required=True, help="write metrics, settings and counts here")
    p.add_argument("--html", type=Path, default=None, help="HTML report with sample panels")
    p.add_argument("--samples", type=int, default=4, help="panels in the HTML report (image | pred | GT | error)")
    sc = p.add_mutually_exclusive_group()
    sc.add_argument("--median-scaling", dest="scaling", action="store_const", const="median",
                    help="per-image median scaling (default for relative-scale models)")
    sc.add_argument("--metric", dest="scaling", action="store_const", const="metric",
                    help="no scaling: the model's depth is taken as metres (default for metric/stereo models)")
    p.add_argument("--scale-factor", type=float, default=1.0, help="multiply predictions first (reference's "
                   "--pred_depth_scale_factor; stereo models already carry baseline/0.1)")
    p.add_argument("--min-depth", type=float, default=1e-3)
    p.add_argument("--max-depth", type=float, default=80.0)
    p.add_argument("--crop", choices=("none", "garg", "eigen"), default="none")
    p.add_argument("--boundary", choices=("auto", "on", "off"), default="auto",
                   help="boundary F1 per image (auto: where GT is dense)")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N frames only (0 = all)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--per-image", action="store_true", help="include per-image metrics in the JSON")
    p.set_defaults(func=run, scaling=None)


# ---------------------------------------------------------------- data


@dataclass
class EvalFrame:
    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    gt: np.ndarray  # (H, W) float32 metres; 0 / NaN / inf = no usable GT
    intrinsics: object | None  # depth_node.geometry.camera.Intrinsics of the image, when known


def load_gt_depth(path: Path) -> np.ndarray:
    """.npy (metres) or KITTI depth PNG (uint16, metres × 256, 0 = none)."""
    try:
        if path.suffix == ".npy":
            d = np.load(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                raw = np.asarray(im)
            if raw.dtype != np.uint16 and raw.dtype != np.int32:
                raise DepthNodeError(f"{path}: depth PNGs must be 16-bit (KITTI: metres × 256), got {raw.dtype}")
            d = raw.astype(np.float32) / 256.0
    except DepthNodeError:
        raise
    except Exception as exc:
        raise DepthNodeError(f"cannot read GT depth {path}: {exc}") from exc
    d = np.squeeze(np.asarray(d, dtype=np.float32))
    if d.ndim != 2:
        raise DepthNodeError(f"{path}: GT depth must be (H, W), got shape {d.shape}")
    return d


def _calibration(root: Path, width: int, height: int):
    """Intrinsics from a KITTI calibration file in or up to three levels above `root` (P_rect_02 of
    calib_cam_to_cam.txt, or P2 of odometry's calib.txt), for images of the given size."""
    from depth_node.geometry.camera import Intrinsics
    from depth_node.sim.kitti_folder import read_calib_file

    for base in (root, *root.parents[:3]):
        for fname, key in (("calib_cam_to_cam.txt", "P_rect_02"), ("calib.txt", "P2")):
            f = base / fname
            if f.is_file():
                P = read_calib_file(f).get(key)
                if P is not None and P.size == 12:
                    P = P.reshape(3, 4)
                    return Intrinsics(P[0, 0], P[1, 1], P[0, 2], P[1, 2], width, height)
    return None


def list_pairs(images: Path, gt_dir: Path) -> list[tuple[Path, Path]]:
    """(image, GT) pairs matched by file stem; images without GT are left out (KITTI GT is not for every frame)."""
    if not images.is_dir():
        raise DepthNodeError(f"no such image folder: {images}")
    if not gt_dir.is_dir():
        raise DepthNodeError(f"no such GT depth folder: {gt_dir}")
    gts = {p.stem: p for p in sorted(gt_dir.iterdir()) if p.suffix in (".npy", ".png")}
    pairs = [(p, gts[p.stem]) for p in image_files(images) if p.stem in gts]
    if not pairs:
        raise DepthNodeError(f"no image in {images} has a GT depth file with the same name in {gt_dir}")
    return pairs


def open_frames(args: argparse.Namespace) -> tuple[int, Iterator[EvalFrame], str]:
    """(number of frames, frame iterator, description of the source).

    --data goes through the KITTI-raw reader of depth_node.sim (synthetic drives and real KITTI share it:
    gt_depth/*.npy, else proj_depth/groundtruth PNGs); frames without GT are left out."""
    from depth_node.geometry.camera import Intrinsics
    from depth_node.image_files import load_rgb

    if args.data is not None and (args.images is not None or args.gt_depth is not None):
        raise DepthNodeError("give either --data or --images with --gt-depth, not both")
    if args.data is None and (args.images is None or args.gt_depth is None):
        raise DepthNodeError("give --data DIR, or both --images DIR and --gt-depth DIR")
    limit = args.limit if args.limit and args.limit > 0 else None

    if args.data is not None:
        from depth_node.sim.kitti_folder import KittiDrive

        drive = KittiDrive(args.data)
        ids = [f for f in drive.frame_ids if drive.has_depth(f)][:limit]
        if not ids:
            raise DepthNodeError(f"{drive.drive_dir}: no frame has GT depth (gt_depth/ or proj_depth/groundtruth/)")

        def gen_drive() -> Iterator[EvalFrame]:
            for f in ids:
                rgb = drive.image(f)
                h, w = rgb.shape[:2]
                intr = drive.intrinsics
                if (intr.width, intr.height) != (w, h):
                    intr = intr.scaled(w, h)
                yield EvalFrame(f"{f:010d}", np.array(rgb), drive.depth(f), intr)  # writable: torch wants it

        return len(ids), gen_drive(), str(drive.drive_dir)

    pairs = list_pairs(args.images, args.gt_depth)[:limit]

    def gen() -> Iterator[EvalFrame]:
        for img, gtp in pairs:
            rgb = load_rgb(img)
            h, w = rgb.shape[:2]
            if args.fx:
                intr = Intrinsics(args.fx, args.fx, w / 2, h / 2, w, h)
            else:
                intr = _calibration(args.images, w, h)
            yield EvalFrame(img.stem, np.array(rgb), load_gt_depth(gtp), intr)

    return len(pairs), gen(), f"{args.images} + {args.gt_depth}"


# ---------------------------------------------------------------- run


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from depth_node.evaluate.depth_metrics import DepthEvalSettings, DepthEvaluator, gt_mask
    from depth_node.evaluate.report import depth_panel, save_png, write_html_report, write_json
    from depth_node.inference.estimator import DepthEstimator
    from depth_node.inference.factory import create_backend

    if not args.model.is_file():
        raise DepthNodeError(f"model file not found: {args.model}")
    n, frames, source = open_frames(args)
    est = DepthEstimator(create_backend(args.model, args.backend, args.precision, args.device))
    scaling = args.scaling or ("metric" if est.metric else "median")
    settings = DepthEvalSettings(
        median_scaling=scaling == "median",
        min_depth=args.min_depth,
        max_depth=args.max_depth,
        crop=args.crop,
        scale_factor=args.scale_factor,
        boundary={"auto": None, "on": True, "off": False}[args.boundary],
    )
    ev = DepthEvaluator(settings)
    samples = set(np.linspace(0, n - 1, min(args.samples, n)).round().astype(int).tolist()) if args.html else set()
    panel_dir = args.html.with_name(args.html.stem + "_files") if args.html else None
    images: list[tuple[str, Path]] = []
    t0 = time.perf_counter()
    infer_s = 0.0
    for k, fr in enumerate(tqdm(frames, total=n, desc="eval-depth", unit="img")):
        ti = time.perf_counter()
        pred = est.depth(fr.rgb, fr.intrinsics, out_size=fr.gt.shape).depth
        infer_s += time.perf_counter() - ti
        res = ev.add(fr.gt, pred, fr.name)
        if k in samples and panel_dir is not None:
            shown = pred * settings.scale_factor * (res.ratio or 1.0)
            mask = gt_mask(fr.gt, settings.min_depth, settings.max_depth, settings.crop)
            panel = depth_panel(fr.rgb, shown, fr.gt, mask, max_depth=settings.max_depth)
            path = save_png(panel_dir / f"{k:05d}_{fr.name}.png", panel)
            ab = res.errors.get("abs_rel", float("nan"))
            images.append((f"{fr.name}: image | prediction{' (median-scaled)' if res.ratio else ''} | GT | "
                           f"|pred−gt|/gt (0…0.5); abs_rel {ab:.4f}", path))
    if not ev.per_image:
        raise DepthNodeError(f"no frames to evaluate in {source}")
    result = ev.result()
    if result.n_images == 0:
        raise DepthNodeError(
            f"none of the {len(ev.per_image)} frames has a GT pixel within ({args.min_depth}, {args.max_depth}) m"
            + (f" inside the {args.crop} crop" if args.crop != "none" else "")
        )
    out = result.to_dict(per_image=args.per_image)
    out["settings"]["scaling"] = scaling
    out["model"] = {
        "file": str(args.model),
        "arch": est.info.arch,
        "input": [est.height, est.width],
        "metric": est.metric,
        "scale": est.info.scale,
        "digest": est.info.digest,
        "backend": est.backend.name,
        "precision": est.backend.precision,
    }
    out["data"] = {"source": source, "frames": len(ev.per_image)}
    out["timing"] = {"total_s": time.perf_counter() - t0, "inference_s": infer_s}
    write_json(args.json, out)
    if args.html:
        notes = [f"Model {args.model} on {source}: {result.n_images} images, scaling {scaling}, crop {args.crop}, "
                 f"depth range ({args.min_depth}, {args.max_depth}) m."]
        write_html_report(args.html, f"eval-depth: {args.model.name}", out, images, notes)
    m = result.metrics
    print("   " + " ".join(f"{k:>9}" for k in m))
    print("   " + " ".join(f"{v:9.4f}" for v in m.values()))
    if result.ratio_median is not None:
        print(f"   scaling ratios: median {result.ratio_median:.4f}, std {result.ratio_std:.4f}")
    if result.boundary_f1 is not None:
        print(f"   boundary F1: {result.boundary_f1:.4f} ({result.n_boundary} images)")
    if result.n_skipped:
        print(f"   {result.n_skipped} frames without valid GT were skipped")
    return 0
