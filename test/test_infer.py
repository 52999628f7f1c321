"""`depth-node infer`: depth for image files and folders, written as .npy and a colourised PNG, at the network's or
the input's resolution; checked with a model whose output is known by hand (conftest.flat_model_file)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FLAT_DEPTH, flat_model_file
from PIL import Image

from depth_node.cli import main


@pytest.fixture(scope="module")
def flat_model(tmp_path_factory):
    from depth_node.checkpoints.model_file import save_model

    path = tmp_path_factory.mktemp("infer_models") / "flat.pt"
    save_model(path, flat_model_file(64, 192))
    return path


def _images(folder, n: int, size=(150, 50)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for k in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{k:03d}.png")
    return folder


def test_folder_and_file_inputs_at_network_and_input_size(tmp_path, flat_model, capsys):
    frames = _images(tmp_path / "frames", 2)
    single = _images(tmp_path / "one", 1, size=(90, 30)) / "000.png"
    out = tmp_path / "out"
    assert main(["infer", str(frames), "--model", str(flat_model), "-o", str(out), "--backend", "torch"]) == 0
    printed = capsys.readouterr().out
    assert "wrote depth (relative units) for 2 images" in printed
    for k in range(2):
        d = np.load(out / f"{k:03d}.npy")
        assert d.shape == (64, 192)  # the network's size
        np.testing.assert_allclose(d, FLAT_DEPTH, rtol=1e-6)
        assert (out / f"{k:03d}_depth.png").is_file()
    out2 = tmp_path / "out2"
    assert main(["infer", str(single), "--model", str(flat_model), "-o", str(out2), "--backend", "torch",
                 "--input-size"]) == 0
    d = np.load(out2 / "000.npy")
    assert d.shape == (30, 90)  # the image's size
    np.testing.assert_allclose(d, FLAT_DEPTH, rtol=1e-5)


def test_same_names_from_several_folders_do_not_overwrite_each_other(tmp_path, flat_model, capsys):
    a, b = _images(tmp_path / "drive_a" / "data", 2), _images(tmp_path / "drive_b" / "data", 1)
    out = tmp_path / "out"
    assert main(["infer", str(a), str(b), "--model", str(flat_model), "-o", str(out), "--backend", "torch"]) == 0
    assert "for 3 images" in capsys.readouterr().out
    written = sorted(p.name for p in out.glob("*.npy"))
    assert written == ["drive_a__data__000.npy", "drive_a__data__001.npy", "drive_b__data__000.npy"]


def test_bad_fx_and_unwritable_output_are_one_clear_error(tmp_path, flat_model, capsys):
    frames = _images(tmp_path / "frames", 1)
    for fx in ("0", "-500"):
        rc = main(["infer", str(frames), "--model", str(flat_model), "-o", str(tmp_path / "o"), "--fx", fx])
        err = capsys.readouterr().err
        assert rc == 2 and "--fx must be a focal length in pixels > 0" in err, err
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    rc = main(["infer", str(frames), "--model", str(flat_model), "-o", str(blocker), "--backend", "torch"])
    err = capsys.readouterr().err
    assert rc == 2 and "file.txt" in err and "Traceback" not in err, err


def test_16_bit_grey_images_are_scaled_not_clipped(tmp_path) -> None:
    from depth_node.io.image_files import ImageFileError, load_rgb

    grey = np.arange(0, 65536, 16, dtype=np.uint16).reshape(64, 64)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    rgb = load_rgb(tmp_path / "g16.png")
    expected = np.round(grey.astype(np.float64) * 255 / 65535).astype(np.uint8)  # cv_bridge's mono16 → mono8
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], expected)
    Image.fromarray(np.ones((8, 8), np.float32)).save(tmp_path / "f.tiff")
    with pytest.raises(ImageFileError, match="floating-point"):
        load_rgb(tmp_path / "f.tiff")


def test_missing_input_is_one_clear_error(tmp_path, flat_model, capsys):
    rc = main(["infer", str(tmp_path / "nope"), "--model", str(flat_model), "-o", str(tmp_path / "o")])
    assert rc == 2 and "no such image or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    rc = main(["infer", str(tmp_path / "empty"), "--model", str(flat_model), "-o", str(tmp_path / "o")])
    assert rc == 2 and "no images found" in capsys.readouterr().err
