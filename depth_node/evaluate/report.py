"""Small report helpers shared by eval commands, the trainer and the demo: PNG panels/plots and one HTML page.

Plots use matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), so they work
headless and inside a process that also runs a GUI or ROS. HTML reports embed their images (base64) by
default: one file to attach to a CI run or an issue, nothing to keep next to it.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_node.colormap import colorize

# ---------------------------------------------------------------- images


def save_png(path: str | Path, image: np.ndarray) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(path)
    return path


def error_image(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None, max_rel: float = 0.5) -> np.ndarray:
    """|pred − gt|/gt as colour (black = 0 or no GT, bright = ≥ max_rel), so sparse LiDAR GT stays readable."""
    from matplotlib import colormaps

    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(pred - gt) / gt
    ok = np.isfinite(rel) & (gt > 0)
    if mask is not None:
        ok &= mask
    t = np.clip(np.where(ok, rel, 0.0) / max_rel, 0.0, 1.0)
    rgb = (colormaps["inferno"](t)[..., :3] * 255.0).astype(np.uint8)
    rgb[~ok] = 0
    return rgb


def _spread_sparse(depth: np.ndarray, min_density: float = 0.3, iterations: int = 2) -> np.ndarray:
    """For display only: grow sparse (LiDAR) depth by nearest-wins 3×3 dilation so points are visible."""
    valid = np.isfinite(depth) & (depth > 0)
    if valid.mean() >= min_density:
        return depth
    inv = np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0)
    for _ in range(iterations):
        p = np.pad(inv, 1)
        inv = np.max([p[dy : dy + inv.shape[0], dx : dx + inv.shape[1]] for dy in range(3) for dx in range(3)], axis=0)
    with np.errstate(divide="ignore"):
        return np.where(inv > 0, 1.0 / inv, np.nan).astype(np.float32)


def _fit_width(img: np.ndarray, width: int) -> np.ndarray:
    if img.shape[1] == width:
        return img
    from PIL import Image

    h = max(1, round(img.shape[0] * width / img.shape[1]))
    return np.asarray(Image.fromarray(img).resize((width, h), Image.BILINEAR))


def depth_panel(
    rgb: np.ndarray | None,
    pred: np.ndarray,
    gt: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    max_depth: float | None = None,
    separator: int = 4,
    max_width: int = 1024,
) -> np.ndarray:
    """Image | prediction | GT | relative error, stacked vertically (driving frames are wide), one colour range
    for prediction and GT (from GT when present) so their colours are comparable."""
    finite = gt[np.isfinite(gt) & (gt > 0)] if gt is not None else pred[np.isfinite(pred) & (pred > 0)]
    vmin = float(np.percentile(finite, 2)) if finite.size else None
    vmax = float(np.percentile(finite, 98)) if finite.size else None
    if max_depth is not None and vmax is not None:
        vmax = min(vmax, max_depth)
    width = min(max_width, pred.shape[1] if gt is None else gt.shape[1])
    rows = []
    if rgb is not None:
        rows.append(rgb)
    rows.append(colorize(pred, "turbo", vmin or 0.0, vmax or 0.0, bgr=False))
    if gt is not None:
        rows.append(colorize(_spread_sparse(gt), "turbo", vmin or 0.0, vmax or 0.0, bgr=False))
        if pred.shape == gt.shape:
            err = error_image(gt, pred, mask)
            if not (np.isfinite(gt) & (gt > 0)).mean() >= 0.3:  # sparse GT: grow the error dots like the GT
                ok = err.any(axis=2)
                for _ in range(2):
                    p = np.pad(err, ((1, 1), (1, 1), (0, 0)))
                    q = np.pad(ok, 1)
                    h, w = ok.shape
                    for dy in range(3):
                        for dx in range(3):
                            take = ~ok & q[dy : dy + h, dx : dx + w]
                            err[take] = p[dy : dy + h, dx : dx + w][take]
                            ok = ok | take
            rows.append(err)
    rows = [_fit_width(np.asarray(r, dtype=np.uint8), width) for r in rows]
    sep = np.full((separator, width, 3), 255, dtype=np.uint8)
    out = []
    for i, r in enumerate(rows):
        if i:
            out.append(sep)
        out.append(r)
    return np.concatenate(out, axis=0)


# ---------------------------------------------------------------- plots


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_axes(gt_xyz: np.ndarray) -> tuple[int, int]:
    """The two axes along which GT moves most: x–z for KITTI's optical frame, x–y for TUM/EuRoC's worlds."""
    spread = np.ptp(np.asarray(gt_xyz), axis=0)
    a, b = sorted(np.argsort(spread)[-2:])
    return int(a), int(b)


def plot_trajectory(
    path: str | Path,
    gt_xyz: np.ndarray,
    pred_xyz: np.ndarray | Mapping[str, np.ndarray],
    title: str = "",
    errors: np.ndarray | None = None,
    stamps: np.ndarray | None = None,
) -> Path:
    """Top view of the prediction(s) over GT (equal axes), plus the per-pose error over time when given."""
    gt_xyz = np.asarray(gt_xyz)
    preds = {"prediction": pred_xyz} if not isinstance(pred_xyz, Mapping) else dict(pred_xyz)
    a, b = plot_axes(gt_xyz)
    names = "xyz"
    fig = _figure(11 if errors is not None else 7, 6)
    ax = fig.add_subplot(1, 2, 1) if errors is not None else fig.add_subplot(1, 1, 1)
    ax.plot(gt_xyz[:, a], gt_xyz[:, b], "k-", lw=2, label="ground truth")
    ax.plot(gt_xyz[0, a], gt_xyz[0, b], "ko", ms=6)
    for name, xyz in preds.items():
        xyz = np.asarray(xyz)
        ax.plot(xyz[:, a], xyz[:, b], "-", lw=1.2, label=name)
    ax.set_xlabel(f"{names[a]} [m]")
    ax.set_ylabel(f"{names[b]} [m]")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title or "trajectory (top view)")
    if errors is not None:
        ax2 = fig.add_subplot(1, 2, 2)
        x = np.arange(len(errors)) if stamps is None else np.asarray(stamps) - stamps[0]
        ax2.plot(x, errors, "-", lw=1)
        ax2.set_xlabel("frame" if stamps is None else "time [s]")
        ax2.set_ylabel("position error [m]")
        ax2.grid(True, alpha=0.3)
        ax2.set_title("ATE per pose")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_curves(path: str | Path, curves: Mapping[str, Sequence[float]], xlabel: str = "step", title: str = "") -> Path:
    """Line plot of named series (training losses, metrics per epoch)."""
    fig = _figure(7, 4)
    ax = fig.add_subplot(1, 1, 1)
    for name, ys in curves.items():
        ax.plot(np.arange(len(ys)), ys, label=name)
    ax.set_xlabel(xlabel)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_cloud(path: str | Path, xyz: np.ndarray, rgb: np.ndarray | None = None, title: str = "",
               max_points: int = 20000, max_range: float = 60.0) -> Path:
    """An oblique 3-D view of a point cloud in the optical frame (x right, y down, z forward), drawn as if seen
    from above and behind the camera; colours from `rgb` (N, 3 uint8) or by range."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    ok = np.isfinite(xyz).all(axis=1) & (xyz[:, 2] > 0) & (xyz[:, 2] < max_range)
    idx = np.flatnonzero(ok)
    if idx.size > max_points:
        idx = idx[np.linspace(0, idx.size - 1, max_points).astype(int)]
    p = xyz[idx]
    fig = _figure(8, 5)
    ax = fig.add_subplot(1, 1, 1, projection="3d")
    if rgb is not None:
        c = np.asarray(rgb).reshape(-1, 3)[idx] / 255.0
    else:
        c = colorize(p[:, 2].reshape(1, -1).astype(np.float32), "turbo", 0.0, 0.0, bgr=False)[0] / 255.0
    # plot axes: x right, z forward (depth), −y up
    ax.scatter(p[:, 0], p[:, 2], -p[:, 1], c=c, s=1.5, depthshade=False, linewidths=0)
    ax.scatter([0], [0], [0], c="k", s=20, marker="^")
    ax.set_xlabel("x right [m]")
    ax.set_ylabel("z forward [m]")
    ax.set_zlabel("up [m]")
    if p.size:
        span = max(float(np.ptp(p[:, 0])), float(np.ptp(p[:, 2])), 1.0)
        ax.set_box_aspect((float(np.ptp(p[:, 0])) / span + 0.05, float(np.ptp(p[:, 2])) / span + 0.05,
                           max(float(np.ptp(p[:, 1])) / span, 0.05)))
    ax.view_init(elev=28, azim=-75)
    ax.set_title(title or "point cloud")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_latency(path: str | Path, latency_ms: np.ndarray, stamps_s: np.ndarray | None = None, title: str = "") -> Path:
    """Latency over the run (left) and its histogram with median and p95 (right)."""
    lat = np.asarray(latency_ms, dtype=np.float64)
    fig = _figure(11, 4)
    ax = fig.add_subplot(1, 2, 1)
    x = np.arange(lat.size) if stamps_s is None else np.asarray(stamps_s) - stamps_s[0]
    ax.plot(x, lat, ".-", lw=0.8, ms=2)
    ax.set_xlabel("frame" if stamps_s is None else "bag time [s]")
    ax.set_ylabel("latency [ms]")
    ax.grid(True, alpha=0.3)
    ax.set_title(title or "latency per frame")
    ax2 = fig.add_subplot(1, 2, 2)
    if lat.size:
        ax2.hist(lat, bins=min(40, max(5, lat.size // 3)), color="tab:blue", alpha=0.8)
        for q, style in ((50, "-"), (95, "--")):
            v = float(np.percentile(lat, q))
            ax2.axvline(v, color="k", ls=style, lw=1, label=f"p{q} {v:.1f} ms")
        ax2.legend(fontsize=8)
    ax2.set_xlabel("latency [ms]")
    ax2.set_ylabel("frames")
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


# ---------------------------------------------------------------- HTML


def flatten_metrics(metrics: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    """Nested dict → [("ate.se3.trans.rmse", 0.12), ...]; lists of numbers longer than 12 are summarised."""
    rows: list[tuple[str, object]] = []
    for k, v in metrics.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            rows += flatten_metrics(v, key)
        elif isinstance(v, list | tuple) and len(v) > 12:
            rows.append((key, f"[{len(v)} values]"))
        else:
            rows.append((key, v))
    return rows


def _fmt(v: object) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.6g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _img_src(path: Path, embed: bool, base: Path) -> str:
    if embed:
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        return f"data:image/png;base64,{data}"
    try:
        return html.escape(str(Path(path).resolve().relative_to(base.resolve())))
    except ValueError:
        return html.escape(Path(path).resolve().as_uri())


@dataclass(frozen=True)
class CardItem:
    """One line of a report's summary card: a headline figure (with its limit and verdict when it has one)."""

    label: str
    value: object
    unit: str = ""
    limit: float | None = None  # upper bound; the verdict is value <= limit
    passed: bool | None = None  # None: no verdict (a figure without a limit)

    @staticmethod
    def judged(label: str, value: float | None, limit: float | None, unit: str = "") -> CardItem:
        ok = None if limit is None else (value is not None and math.isfinite(value) and value <= limit)
        return CardItem(label, value, unit, limit, ok)


def _card_html(items: Sequence[CardItem], facts: Mapping[str, object]) -> str:
    """The summary card: verdict, headline figures with PASS/FAIL, then the run's facts (model, camera, ...)."""
    verdicts = [i.passed for i in items if i.passed is not None]
    head = ("" if not verdicts else '<p class="verdict pass">all acceptance figures pass</p>' if all(verdicts)
            else f'<p class="verdict fail">{verdicts.count(False)} of {len(verdicts)} acceptance figures fail</p>')
    rows = []
    for i in items:
        value = ("n/a" if i.value is None else f"{i.value:.4g}" if isinstance(i.value, float) and math.isfinite(i.value)
                 else _fmt(i.value))
        limit = "" if i.limit is None else f"≤ {_fmt(i.limit)}"
        badge = ("" if i.passed is None else '<span class="pass">PASS</span>' if i.passed
                 else '<span class="fail">FAIL</span>')
        rows.append(f"<tr><th>{html.escape(i.label)}</th><td>{html.escape(value)} {html.escape(i.unit)}</td>"
                    f"<td>{html.escape(limit)}</td><td>{badge}</td></tr>")
    fact_rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td colspan=3>{html.escape(_fmt(v))}</td></tr>"
                        for k, v in facts.items())
    return f'<section id="summary" class="card">{head}<table>{"".join(rows)}{fact_rows}</table></section>'


def write_html_report(
    path: str | Path,
    title: str,
    metrics: Mapping,
    images: Sequence[tuple[str, str | Path]] = (),
    notes: Sequence[str] = (),
    embed: bool = True,
    card: Sequence[CardItem] = (),
    facts: Mapping[str, object] | None = None,
) -> Path:
    """One self-contained HTML page that leads with the answer: title, the summary card (headline figures with
    PASS/FAIL, and facts such as model, camera, backend, rate), the pictures, the notes, and last the full metric
    table (nested dicts flattened) collapsed in a <details>. The raw metrics are also embedded as JSON (in a
    <script type="application/json" id="metrics">) for scripts. Every report (demo, eval-bag, eval-pose,
    eval-depth, training) uses this one layout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = flatten_metrics(metrics)
    rows = "\n".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>" for k, v in flat)
    figs = "\n".join(
        f'<figure><img src="{_img_src(Path(p), embed, path.parent)}" alt="{html.escape(c)}">'
        f"<figcaption>{html.escape(c)}</figcaption></figure>"
        for c, p in images
    )
    card_html = _card_html(card, facts or {}) if card or facts else ""
    note_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    raw = json.dumps(metrics, default=_json_default).replace("</", "<\\/")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(title)}</h1>
{card_html}
<div id="figures">{figs}</div>
<div id="notes">{note_html}</div>
<details id="all-metrics"><summary>All metrics ({len(flat)} values)</summary>
<table>
{rows}
</table>
</details>
<script type="application/json" id="metrics">{raw}</script>
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path


_CSS = """
body { font-family: sans-serif; margin: 1.2em 2em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 0.4em; }
.card { border: 1px solid #bbb; border-radius: 6px; padding: 0.4em 1em; display: inline-block; background: #fafafa; }
.card th { text-align: left; padding: 1px 12px 1px 0; font-weight: normal; color: #444; }
.card td { padding: 1px 10px 1px 0; font-family: monospace; }
.verdict { font-weight: bold; margin: 0.3em 0; }
.pass { color: #0a7d28; font-weight: bold; } .fail { color: #c0151b; font-weight: bold; }
#figures { display: flex; flex-wrap: wrap; gap: 0.8em; }
figure { margin: 0.6em 0; max-width: 100%; } img { max-width: 100%; }
figcaption { color: #555; font-size: 90%; }
details table { border-collapse: collapse; margin: 0.6em 0; }
details td { border: 1px solid #ccc; padding: 2px 8px; font-family: monospace; }
"""


def _json_default(o: object):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | Path, data: Mapping) -> Path:
    """JSON with NumPy scalars/arrays converted; NaN is written as null (strict JSON readers reject NaN)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_nan_to_none(data), indent=2, default=_json_default) + "\n")
    return path


def _nan_to_none(o):
    if isinstance(o, np.ndarray):
        o = o.tolist()
    if isinstance(o, Mapping):
        return {k: _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_nan_to_none(v) for v in o]
    if isinstance(o, float | np.floating) and not math.isfinite(float(o)):
        return None
    return o
