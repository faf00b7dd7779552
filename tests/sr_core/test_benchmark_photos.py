import filecmp

import numpy as np
import pytest
import torch
from PIL import Image

from sr_core.benchmark_photos import LR_FOLDER, benchmark_photos, write_benchmark, write_lr
from sr_core.infer import tile_for
from sr_core.matlab_resize import matlab_downscale
from sr_core.models import build_model

# name: (width, height, mode) as written
EXPECTED = {"chelsea": (451, 300, "RGB"), "coffee_crop": (597, 397, "RGB"), "camera": (512, 512, "L"),
            "retina": (1411, 1411, "RGB")}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    return folder, write_benchmark(folder), write_lr(folder)


def _read(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.array(img)


def test_the_folder_holds_the_photos_at_full_size_in_their_modes(bench):
    folder, written, _ = bench
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(f"{n}.png" for n in EXPECTED)
    assert written == [folder / f"{n}.png" for n in benchmark_photos()]
    for name, photo in benchmark_photos().items():
        with Image.open(folder / f"{name}.png") as img:
            assert (img.width, img.height, img.mode) == EXPECTED[name], name
        assert np.array_equal(_read(folder / f"{name}.png"), photo), name  # lossless, full size
    # What a paper-style evaluation must handle: sides that are not multiples of 4 (after no
    # mod-crop), and an image that a wide net upscales in tiles under the default memory bound.
    assert any(w % 4 or h % 4 for w, h, _ in EXPECTED.values())
    wide = build_model("residual", blocks=8, channels=256)
    assert tile_for(wide, wide.receptive_radius()) < EXPECTED["retina"][0] // 4


def test_lr_folder_is_matlab_bicubic_of_the_mod_cropped_photos(bench):
    folder, _, lr_paths = bench
    assert sorted(p.name for p in lr_paths) == sorted(f"{n}.png" for n in EXPECTED)
    for name, (w, h, mode) in EXPECTED.items():
        lr_path = folder / LR_FOLDER / f"{name}.png"
        with Image.open(lr_path) as img:
            assert (img.width, img.height, img.mode) == (w // 4, h // 4, mode), name  # gray stays gray
        hr = torch.from_numpy(_read(folder / f"{name}.png"))
        hr = hr.permute(2, 0, 1) if hr.dim() == 3 else hr[None]
        expected = matlab_downscale(hr[:, :h - h % 4, :w - w % 4].contiguous())
        lr = torch.from_numpy(_read(lr_path))
        assert torch.equal(lr.permute(2, 0, 1) if lr.dim() == 3 else lr[None], expected), name


def test_writing_again_gives_the_same_bytes(bench, tmp_path):
    folder, _, _ = bench
    write_benchmark(tmp_path)
    write_lr(tmp_path)
    for name in EXPECTED:
        for sub in (".", LR_FOLDER):
            assert filecmp.cmp(folder / sub / f"{name}.png", tmp_path / sub / f"{name}.png", shallow=False)


def test_a_folder_without_images_is_named(tmp_path):
    with pytest.raises(ValueError, match="folder="):
        write_lr(tmp_path)
