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


ERROR_MAX_REL = 0.5  # relative error at the top of the error colour scale (|pred − GT| / GT = 50 %)
MIN_BAR_WIDTH = 160  # px: narrower panels get no colour bars (no room for their labels)


def depth_range(pred: np.ndarray, gt: np.ndarray | None = None,
                max_depth: float | None = None) -> tuple[float, float] | None:
    """The depth colour range of a panel, in metres: the 2nd and 98th percentiles of GT (of the prediction
    without GT), the top capped at `max_depth`; None when nothing valid is left to colour."""
    finite = gt[np.isfinite(gt) & (gt > 0)] if gt is not None else pred[np.isfinite(pred) & (pred > 0)]
    if not finite.size:
        return None
    vmin, vmax = float(np.percentile(finite, 2)), float(np.percentile(finite, 98))
    if max_depth is not None:
        vmax = min(vmax, max_depth)
    return (vmin, vmax) if 0 < vmin < vmax else None


def panel_legend(rng: tuple[float, float] | None, with_error: bool = True) -> str:
    """The colour scales of a `depth_panel`, for its caption (the panel also draws them as colour bars)."""
    depth = ("depth colours per frame" if rng is None else
             f"depth colour scale {rng[0]:.3g}–{rng[1]:.3g} m (near = red, far = blue; clipped outside)")
    if not with_error:
        return depth
    return f"{depth}; error |pred − GT| / GT 0–{100 * ERROR_MAX_REL:.0f} % (black = no GT)"


def _nice_depth_ticks(vmin: float, vmax: float) -> list[float]:
    """1-2-5 depths inside (vmin, vmax), thinned so no two sit closer than 8 % of the inverse-depth bar."""
    inv = lambda d: (1.0 / d - 1.0 / vmax) / (1.0 / vmin - 1.0 / vmax)  # noqa: E731 - bar position, 1 = near
    cands = sorted({m * 10.0**e for e in range(-2, 4) for m in (1, 2, 5) if vmin < m * 10.0**e < vmax})
    ticks = [vmin, vmax]
    for c in cands:
        if all(abs(inv(c) - inv(t)) > 0.08 for t in ticks):
            ticks.append(c)
    return sorted(ticks)


def _fmt_m(d: float) -> str:
    return f"{d:.2g}" if d < 10 else f"{d:.0f}"


def colour_bar(width: int, kind: str, vmin: float = 0.0, vmax: float = ERROR_MAX_REL) -> np.ndarray:
    """A labelled colour bar `width` pixels wide as an RGB image: `kind` "depth" (the turbo scale of `colorize`
    between vmin and vmax metres, spaced in inverse depth as it colours, near on the left) or "error" (the
    inferno scale of `error_image`, 0 to vmax as a percentage)."""
    from matplotlib import colormaps

    fig = _figure(width / 100.0, 0.42)
    left, right = min(0.3, 62.0 / width), 16.0 / width  # room for the label; the last tick label's half
    ax = fig.add_axes((left, 0.58, 1.0 - left - right, 0.36))
    if kind == "depth":
        lut = colorize(1.0 / np.linspace(1.0 / vmin, 1.0 / vmax, 256)[None, :].astype(np.float32), "turbo",
                       vmin, vmax, bgr=False)
        ax.imshow(lut, aspect="auto", extent=(0.0, 1.0, 0.0, 1.0))
        ticks = _nice_depth_ticks(vmin, vmax)
        ax.set_xticks([1.0 - (1.0 / d - 1.0 / vmax) / (1.0 / vmin - 1.0 / vmax) for d in ticks])
        ax.set_xticklabels([_fmt_m(d) for d in ticks])
        label = "depth [m]"
    else:
        ax.imshow(colormaps["inferno"](np.linspace(0.0, 1.0, 256))[None, :, :3], aspect="auto",
                  extent=(0.0, 1.0, 0.0, 1.0))
        steps = np.linspace(0.0, 1.0, 6)
        ax.set_xticks(steps)
        ax.set_xticklabels([f"{100 * vmax * t:.0f}" + ("+" if t == 1.0 else "") for t in steps])
        label = "error [%]"
    ax.set_yticks([])
    ax.tick_params(axis="x", labelsize=7, length=2, pad=1)
    fig.text(0.01, 0.76, label, fontsize=7, va="center")
    fig.canvas.draw()
    return _fit_width(np.ascontiguousarray(np.asarray(fig.canvas.buffer_rgba())[..., :3]), width)


def depth_panel(
    rgb: np.ndarray | None,
    pred: np.ndarray,
    gt: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    max_depth: float | None = None,
    separator: int = 4,
    max_width: int = 1024,
    scale_bars: bool = True,
) -> np.ndarray:
    """Image | prediction | GT | relative error, stacked vertically (driving frames are wide), one colour range
    for prediction and GT (`depth_range`: from GT when present) so their colours are comparable; with
    `scale_bars`, a labelled colour bar (metres) under the depth rows and one (0–50 %) under the error row."""
    rng = depth_range(pred, gt, max_depth)
    vmin, vmax = rng if rng is not None else (0.0, 0.0)
    width = min(max_width, pred.shape[1] if gt is None else gt.shape[1])
    scale_bars = scale_bars and width >= MIN_BAR_WIDTH  # a thumbnail has no room for labels: its caption says
    rows = []
    if rgb is not None:
        rows.append(rgb)
    rows.append(colorize(pred, "turbo", vmin, vmax, bgr=False))
    if gt is not None:
        rows.append(colorize(_spread_sparse(gt), "turbo", vmin, vmax, bgr=False))
    if scale_bars and rng is not None:
        rows.append(colour_bar(width, "depth", vmin, vmax))
    if gt is not None and pred.shape == gt.shape:
        err = error_image(gt, pred, mask, ERROR_MAX_REL)
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
        if scale_bars:
            rows.append(colour_bar(width, "error", 0.0, ERROR_MAX_REL))
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


def plot_axes(gt_xyz: np.ndarray, up: int | None = None) -> tuple[int, int]:
    """The two axes of a top view. `up` (the index of the vertical axis) known: the other two, whatever the
    motion (REP 103/105 odometry, z up: always x–y; a straight drive must not turn into a side view). Unknown:
    the two axes along which GT moves most (x–z for KITTI's optical frame, x–y for TUM/EuRoC's worlds)."""
    if up is not None:
        a, b = (i for i in range(3) if i != up)
        return a, b
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
    up: int | None = None,
) -> Path:
    """Top view of the prediction(s) over GT (equal axes), plus the per-pose error over time when given.
    `up`: index of the vertical axis when the frame is known (2 for REP 103 odometry), see `plot_axes`."""
    gt_xyz = np.asarray(gt_xyz)
    preds = {"prediction": pred_xyz} if not isinstance(pred_xyz, Mapping) else dict(pred_xyz)
    a, b = plot_axes(gt_xyz, up)
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


def plot_curves(path: str | Path, curves: Mapping[str, Sequence[float]], xlabel: str = "step", title: str = "", *,
                x: Sequence[float] | None = None, ylabel: str = "",
                hlines: Sequence[tuple] = (), span: tuple[float, float, str] | None = None) -> Path:
    """Line plot of named series (training losses, metrics per epoch, per-frame figures over bag time).

    `x`: the x values of every series (default 0, 1, ...); `hlines`: labelled horizontal reference lines
    (y, label[, colour]) (a limit, a mean); `span`: (x0, x1, label) shaded (a warm-up). A legend only where it
    tells lines apart: one series without references is named by the axis label and title instead."""
    fig = _figure(7, 4)
    ax = fig.add_subplot(1, 1, 1)
    for name, ys in curves.items():
        ax.plot(np.arange(len(ys)) if x is None else np.asarray(x)[: len(ys)], ys, label=name)
    for i, (y, label, *colour) in enumerate(hlines):
        ax.axhline(y, color=colour[0] if colour else ("tab:red", "k", "tab:gray")[i % 3], ls=("--", ":", "-.")[i % 3],
                   lw=1.2, label=label)
    if span is not None:
        ax.axvspan(span[0], span[1], color="0.85", alpha=0.7, lw=0, label=span[2])
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if len(curves) + len(hlines) + (span is not None) > 1:
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


LATENCY_PERCENTILES = (50, 90, 99)  # the markers of `plot_latency`; the JSON's timing stats give the same


def latency_markers(values_ms: np.ndarray) -> list[tuple[str, float]]:
    """(name, value) of the percentiles `plot_latency` marks: median, p90, p99 (NumPy's linear percentiles,
    as the JSON's timing statistics)."""
    v = np.asarray(values_ms, dtype=np.float64)
    if not v.size:
        return []
    return [("median" if q == 50 else f"p{q}", float(np.percentile(v, q))) for q in LATENCY_PERCENTILES]


def plot_latency(path: str | Path, latency_ms: np.ndarray, stamps_s: np.ndarray | None = None, title: str = "",
                 quantity: str = "latency") -> Path:
    """`quantity` (latency, or pipeline time per frame) over the run (left) and its histogram with the median,
    p90 and p99 marked (right; `latency_markers`, the percentiles of the JSON)."""
    lat = np.asarray(latency_ms, dtype=np.float64)
    fig = _figure(11, 4)
    ax = fig.add_subplot(1, 2, 1)
    x = np.arange(lat.size) if stamps_s is None else np.asarray(stamps_s) - stamps_s[0]
    ax.plot(x, lat, ".-", lw=0.8, ms=2)
    ax.set_xlabel("frame" if stamps_s is None else "bag time [s]")
    ax.set_ylabel(f"{quantity} [ms]")
    ax.grid(True, alpha=0.3)
    ax.set_title(title or f"{quantity} per frame")
    ax2 = fig.add_subplot(1, 2, 2)
    if lat.size:
        ax2.hist(lat, bins=min(40, max(5, lat.size // 3)), color="tab:blue", alpha=0.8)
        for (name, v), style in zip(latency_markers(lat), ("-", "--", ":")):
            ax2.axvline(v, color="k", ls=style, lw=1, label=f"{name} {v:.1f} ms")
        ax2.legend(fontsize=8)
    ax2.set_xlabel(f"{quantity} [ms]")
    ax2.set_ylabel("frames")
    from matplotlib.ticker import MaxNLocator

    ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
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


@dataclass(frozen=True)
class SummaryTable:
    """A small results table shown in the summary card (one row per data set, say), not collapsed."""

    headers: Sequence[str]
    rows: Sequence[Sequence[object]]
    caption: str = ""


def _cell(v: object) -> str:
    return html.escape("n/a" if v is None else f"{v:.3f}" if isinstance(v, float) and math.isfinite(v) else _fmt(v))


def _table_html(t: SummaryTable) -> str:
    caption = f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r) + "</tr>" for r in t.rows)
    return f'<table class="results">{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def verdict_text(items: Sequence[CardItem]) -> tuple[str, bool] | None:
    """The card's headline verdict over the figures that have a limit, and whether all of them pass; it names
    how many figures were judged, so rows shown without a limit are not read as passed. None: nothing judged."""
    verdicts = [i.passed for i in items if i.passed is not None]
    if not verdicts:
        return None
    n, free = len(verdicts), len(items) - len(verdicts)
    if all(verdicts):
        more = f"; {free} more shown without a limit" if free else ""
        return f"all {n} figures with a limit pass{more}", True
    return f"{verdicts.count(False)} of {n} figures with a limit fail", False


def limit_text(i: CardItem) -> str:
    """'≤ 5 % of path': the limit with the figure's unit."""
    return "" if i.limit is None else f"≤ {_fmt(i.limit)} {i.unit}".strip()


def _card_html(items: Sequence[CardItem], facts: Mapping[str, object], table: SummaryTable | None = None) -> str:
    """The summary card: verdict, headline figures with PASS/FAIL, then the run's facts (model, camera, ...),
    then a results table when given."""
    v = verdict_text(items)
    head = "" if v is None else f'<p class="verdict {"pass" if v[1] else "fail"}">{html.escape(v[0])}</p>'
    rows = []
    for i in items:
        value = ("n/a" if i.value is None else f"{i.value:.4g}" if isinstance(i.value, float) and math.isfinite(i.value)
                 else _fmt(i.value))
        badge = ("" if i.passed is None else '<span class="pass">PASS</span>' if i.passed
                 else '<span class="fail">FAIL</span>')
        rows.append(f"<tr><th>{html.escape(i.label)}</th><td>{html.escape(value)} {html.escape(i.unit)}</td>"
                    f"<td>{html.escape(limit_text(i))}</td><td>{badge}</td></tr>")
    fact_rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td colspan=3>{html.escape(_fmt(v))}</td></tr>"
                        for k, v in facts.items())
    main = f"<table>{''.join(rows)}{fact_rows}</table>" if rows or fact_rows else ""
    return (f'<section id="summary" class="card">{head}{main}{_table_html(table) if table is not None else ""}'
            "</section>")


def write_html_report(
    path: str | Path,
    title: str,
    metrics: Mapping,
    images: Sequence[tuple[str, str | Path]] = (),
    notes: Sequence[str] = (),
    embed: bool = True,
    card: Sequence[CardItem] = (),
    facts: Mapping[str, object] | None = None,
    table: SummaryTable | None = None,
) -> Path:
    """One self-contained HTML page that leads with the answer: title, the summary card (headline figures with
    PASS/FAIL, facts such as model, camera, backend, rate, and a results `table` when given), the pictures, the
    notes, and last the full metric
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
    card_html = _card_html(card, facts or {}, table) if card or facts or table is not None else ""
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
table.results { border-collapse: collapse; margin: 0.5em 0; }
table.results caption { text-align: left; color: #444; padding-bottom: 0.2em; }
table.results th, table.results td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
table.results td:first-child, table.results th:first-child { text-align: left; font-family: sans-serif; }
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
