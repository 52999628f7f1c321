"""`depth-node synth`: render a synthetic drive with exact ground truth into a KITTI-like folder or an MCAP bag."""

from __future__ import annotations

import argparse

from depth_node.errors import DepthNodeError


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text + ". Scene, traffic, light and speed come from --config/--set; the seed picks the "
        "drive. Scene kinds: --set scene.kind=street|sidewalk|indoor (its preset first, then the other --set keys; "
        "indoor.layout=corridor|warehouse|office|mixed). Cameras, one --set each: camera.hfov_deg=90, "
        "camera.aspect=16:9 (10:3, 16:9, 4:3, 1:1, 3:2), camera.cx_offset/cy_offset, camera.height_m, "
        "camera.pitch_deg, camera.roll_deg. "
        "Prints the measured render speed (also in manifest.json).",
    )
    p.add_argument("--out", required=True, help="output folder (KITTI root, or the bag directory for mcap)")
    p.add_argument("--frames", type=int, default=100, help="number of frames (default 100)")
    p.add_argument("--seed", type=int, default=0, help="drive seed: same seed + config = identical frames")
    p.add_argument("--format", choices=["kitti", "mcap"], default="kitti", help="output format (default kitti)")
    p.add_argument("--stereo", action="store_true", help="also render the right camera (0.54 m baseline)")
    p.add_argument("--width", type=int, help="image width (intrinsics scale from KITTI's 1242 × 375 unless "
                   "camera.hfov_deg or camera.aspect is set)")
    p.add_argument("--height", type=int, help="image height (camera.aspect, when set, overrides it, and --width "
                   "alone is enough)")
    p.add_argument("--config", help="YAML drive config (sections camera, trajectory, scene, traffic, lighting)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override one config field, e.g. --set traffic.oncoming_cars=0 (repeatable)")
    p.add_argument("--static", action="store_true", help="no moving cars (same as zero lead and oncoming cars)")
    p.add_argument("--rate", type=float, help="frame rate in Hz (default 10)")
    p.add_argument("--depth-png", action="store_true", help="also write KITTI-style uint16 depth PNGs (m·256)")
    p.add_argument("--no-labels", action="store_true", help="skip semantic/instance ids")
    p.add_argument("--compressed", action="store_true", help="mcap: the camera as sensor_msgs/CompressedImage "
                   "(JPEG) on <image>/compressed, as image_transport records it")
    p.add_argument("--drive", type=int, help="KITTI drive number in folder names (default: the seed)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--workers", type=int, help="rendering processes (default: 2 where there are 2+ cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    from depth_node.sim.config import DriveConfig

    cfg = DriveConfig.from_yaml(args.config) if args.config else DriveConfig()
    cfg = cfg.with_overrides(list(args.overrides))
    cfg.seed = int(args.seed)
    cfg.frames = int(args.frames)
    if args.stereo:
        cfg.camera.stereo = True
    if args.height is None and args.width is not None and cfg.camera.aspect:
        args.height = args.width  # camera.aspect sets the height from the width
    if (args.width is None) != (args.height is None):
        raise DepthNodeError("give both --width and --height, or neither (or --width with --set camera.aspect=W:H)")
    if args.width is not None:
        if args.width < 8 or args.height < 8:
            raise DepthNodeError(f"image size {args.width}×{args.height} is too small (at least 8×8)")
        cfg.camera.width, cfg.camera.height = int(args.width), int(args.height)
    if args.rate is not None:
        cfg.trajectory.fps = float(args.rate)
    if args.static:
        cfg.traffic.oncoming_cars = 0
        cfg.traffic.lead_cars = 0
    if cfg.frames < 1:
        raise DepthNodeError(f"--frames must be ≥ 1, got {cfg.frames}")
    if not cfg.trajectory.fps > 0:
        raise DepthNodeError(f"frame rate must be > 0, got {cfg.trajectory.fps}")
    return cfg


def run(args: argparse.Namespace) -> int:
    from depth_node.sim.drive import Drive
    from depth_node.sim.writers import default_workers, write_drive

    cfg = build_config(args)
    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise DepthNodeError(f"--workers must be ≥ 1, got {workers}")
    workers = min(workers, cfg.frames)
    drive = Drive(cfg)
    res = write_drive(drive, args.out, args.format, depth_png=args.depth_png, labels=not args.no_labels,
                      overwrite=args.overwrite, drive_number=args.drive, progress=not args.no_progress,
                      workers=workers, compressed=args.compressed)
    intr = drive.intrinsics
    views = "stereo pairs" if cfg.camera.stereo else "frames"
    print(f"synth: {res.frames} {views} at {intr.width}×{intr.height} (seed {cfg.seed}) → {res.out} [{args.format}]")
    per = res.manifest.get("render_fps_per_worker") or 0.0
    print(f"synth: render {res.render_fps:.2f} fps ({workers} worker(s), {per:.2f} fps each), "
          f"{res.total_fps:.2f} fps including writing")
    return 0
