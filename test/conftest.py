"""Shared test fixtures: the `../shared` fixtures folder and small models with deterministic weights."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    env = os.environ.get("DEPTH_NODE_SHARED")
    path = Path(env) if env else REPO.parent / "shared"
    return path if path.is_dir() else None


def require_shared(sub: str = "") -> Path:
    """The shared fixtures folder; skipped (with the reason) outside CI, a failure in CI where it must exist."""
    base = shared_dir()
    path = base / sub if base else None
    if path is None or not path.exists():
        msg = f"../shared/{sub} not found beside the repository (set DEPTH_NODE_SHARED)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def weights_recipe():
    """The fixture's `fill_state_dict` / `test_input`, imported from ../shared/fixtures/monodepth2."""
    path = require_shared("fixtures/monodepth2/weights_recipe.py")
    spec = importlib.util.spec_from_file_location("weights_recipe", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["weights_recipe"] = mod
    spec.loader.exec_module(mod)
    return mod


def make_model_file(
    height: int = 192, width: int = 640, num_layers: int = 18, pose: bool = True, scale: dict | None = None
):
    """A Monodepth2 ModelFile with the fixture's deterministic weights (no training needed): the same function
    as the reference implementation's golden outputs."""
    from depth_node.checkpoints.model_file import ModelFile
    from depth_node.networks.monodepth2 import DepthNet, PoseNet

    recipe = weights_recipe()

    def fill(net, parts):  # weights are a function of the key: fill under the released files' keys
        return {f"{p}.{k}": v for p in parts for k, v in recipe.fill_state_dict(getattr(net, p).state_dict()).items()}

    depth_sd = fill(DepthNet(num_layers), ("encoder", "depth"))
    pose_sd = fill(PoseNet(num_layers), ("pose_encoder", "pose")) if pose else None
    return ModelFile(
        "monodepth2",
        {"num_layers": num_layers, "pose_num_layers": num_layers},
        height,
        width,
        depth_sd,
        pose_sd,
        {"min_depth": 0.1, "max_depth": 100.0, "scale": scale or {"kind": "stereo", "baseline_m": 0.54, "factor": 5.4}},
    )


# Depth of `flat_model_file`: Monodepth2's disp_to_depth (min 0.1, max 100) of a disparity of sigmoid(0) = 0.5.
FLAT_DEPTH = 1.0 / (1 / 100.0 + (1 / 0.1 - 1 / 100.0) * 0.5)


def flat_model_file(height: int = 64, width: int = 192):
    """A relative-scale model whose finest disparity conv is zeroed: it predicts FLAT_DEPTH at every pixel, so
    tests can write expected metrics and outputs by hand."""
    import torch

    mf = make_model_file(height, width, pose=False, scale={"kind": "relative", "factor": 1.0})
    for k in ("depth.decoder.10.conv.weight", "depth.decoder.10.conv.bias"):
        mf.depth_state[k] = torch.zeros_like(mf.depth_state[k])
    return mf


@pytest.fixture(scope="session")
def recipe_model_path(tmp_path_factory) -> Path:
    from depth_node.checkpoints.model_file import save_model

    path = tmp_path_factory.mktemp("models") / "recipe18.pt"
    save_model(path, make_model_file())
    return path


@pytest.fixture(scope="session")
def small_model_path(tmp_path_factory) -> Path:
    """96×320 input: fast enough for node and end-to-end tests."""
    from depth_node.checkpoints.model_file import save_model

    path = tmp_path_factory.mktemp("models") / "recipe18_small.pt"
    save_model(path, make_model_file(96, 320))
    return path


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx_cache")


def write_small_drive(out: Path, seed: int, frames: int, fmt: str = "kitti", width: int = 320,
                      height: int = 96) -> Path:
    """A short synthetic drive at the small models' size (KITTI-like folder or MCAP bag), without label images."""
    from depth_node.sim.config import DriveConfig
    from depth_node.sim.drive import Drive
    from depth_node.sim.writers import write_drive

    cfg = DriveConfig(seed=seed, frames=frames)
    cfg.camera.width, cfg.camera.height = width, height
    write_drive(Drive(cfg), out, fmt, labels=False)
    return out


# --- Running the suite on two workers (`make test`: pytest -n 2) ---------------------------------------------------
# One pytest process leaves about half of a 2-core machine idle (process starts, ROS discovery, waits on
# subprocesses). Two workers fill it, but two processes that each size their thread pools to the whole machine
# (torch, ONNX Runtime, OpenVINO) spin against each other and run several times slower. So each worker, and every
# process it starts, is pinned to its own share of the CPUs: the runtimes read the affinity mask
# (cpu_info.usable_cpus, OpenMP) and size their pools to it.
# Scheduling (`pytest_xdist_make_scheduler`) keeps a file's tests (and its module-scoped fixtures) on one worker.
# Files with ROS tests may run beside each other: each uses its own ROS_DOMAIN_ID (`test_domains_are_unique`),
# and a worker's processes keep to its CPU. (xdist's own `--dist loadgroup` renames node IDs, which pytest 9 no
# longer allows.) The longest files go first so that the two workers finish together.
# files by their time on one pinned worker (2-core AMD EPYC), longest first; the rest follow in file order
FIRST = ("test/test_train_loop.py", "test/test_quantize.py", "test/test_bench.py", "test/test_node_odometry.py",
         "test/test_eval_bag.py", "test/test_node_burst.py", "test/test_train_adapt.py", "test/test_checkpoints.py",
         "test/test_canonical.py", "test/test_export.py", "test/test_backends_cpu.py", "test/test_depth_pro.py",
         "test/test_node_bench.py", "test/test_node_bad_input.py", "test/test_eval_zoo.py",
         "test/test_metric_scale.py", "test/test_report_layout.py", "test/test_sensitivity.py",
         "test/test_runtime_core.py", "test/test_metric_train.py", "test/test_openvino_memory.py",
         "test/test_launch.py")


def unit_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_configure(config):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker and count > 1 and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        index = int(worker.removeprefix("gw"))
        share = cpus[index::count] or cpus
        os.sched_setaffinity(0, share)


if importlib.util.find_spec("xdist"):  # a hook of an uninstalled plugin is an error

    def pytest_xdist_make_scheduler(config, log):
        from xdist.scheduler import LoadScopeScheduling

        class ByFile(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return unit_of(nodeid)

        config.option.loadscopereorder = False  # keep the order below: longest units first
        return ByFile(config, log)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        rank = {u: i for i, u in enumerate(FIRST)}
        items.sort(key=lambda item: rank.get(unit_of(item.nodeid), len(FIRST)))  # stable: file order within
