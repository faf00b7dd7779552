"""Behaviour of sr_core.data: the embedded set, folder layouts, bad input, the cache, augmentation."""

import os
import re
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from sr_core import data, metrics, patches
from sr_core.data import (LR_KERNELS, DataError, SRPairs, augment_batch, bicubic_psnr, bicubic_upscale, downscale,
                          downscale_with, load_dataset, prepare_dataset, to_float, train_kernel)


def _quiet(line):
    """A progress callback that drops the lines."""


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path, array):
    """PNG with the mode Pillow infers: HxW uint8 -> L, HxW uint16 -> I;16, HxWx4 -> RGBA."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _paired_root(tmp_path, n_train=3, n_val=2, n_test=2):
    """ROOT/{train,val}/{lr,hr}/ (+ test/lr/ when n_test) holding random PNGs of the right sizes."""
    root = tmp_path / "paired"
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        for i in range(n):
            name = f"{split}{i:02d}"
            _save(root / split / "lr" / f"{name}.png", _rgb(32, 32, i))
            if split != "test":
                _save(root / split / "hr" / f"{name}.png", _rgb(128, 128, 100 + i))
    return root


def _hr_only_root(tmp_path, sizes):
    root = tmp_path / "photos"
    for i, (h, w) in enumerate(sizes):
        _save(root / f"photo{i}.png", _rgb(h, w, i))
    return root


def _chw(path):
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)


# --- embedded ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded():
    return load_dataset("embedded", progress=_quiet)


def _photo(name):
    return patches.parse_patch_name(name)[0]


def _scene(name):
    return re.sub(r"_(left|right)$", "", _photo(name))  # the stereo pair is one scene


def test_embedded_has_enough_uint8_pairs_of_the_right_shapes(embedded):
    train, val = embedded.train, embedded.val
    assert 200 <= len(train) <= 1500 and len(val) >= 50
    assert train.lr.shape == (len(train), 3, 32, 32) and train.hr.shape == (len(train), 3, 128, 128)
    assert val.lr.shape == (len(val), 3, 32, 32) and val.hr.shape == (len(val), 3, 128, 128)
    assert {t.dtype for t in (train.lr, train.hr, val.lr, val.hr)} == {torch.uint8}
    assert embedded.test is None and embedded.source == "embedded"
    assert len(set(train.names + val.names)) == len(train) + len(val)


def _corners_by_scene(names):
    """scene -> [(row, col)]: the top-left corners of its 128x128 patches, read from the names."""
    boxes = {}
    for name in names:
        _, row, col = patches.parse_patch_name(name)
        boxes.setdefault(_scene(name), []).append((row, col))
    return boxes


def test_no_val_patch_overlaps_any_train_patch_of_the_same_scene(embedded):
    train, val = _corners_by_scene(embedded.train.names), _corners_by_scene(embedded.val.names)
    overlapping = [(scene, v, t) for scene in val for v in val[scene] for t in train.get(scene, [])
                   if abs(v[0] - t[0]) < 128 and abs(v[1] - t[1]) < 128]
    assert overlapping == []
    # The stereo views count as one scene: the motorcycle's val rows are train rows in neither view.
    assert {_photo(n) for n in embedded.val.names} >= {"motorcycle_left", "motorcycle_right"}


def test_every_photo_is_on_both_sides_in_the_same_proportion(embedded):
    train_photos = [_photo(n) for n in embedded.train.names]
    val_photos = [_photo(n) for n in embedded.val.names]
    photos = set(train_photos) | set(val_photos)
    assert len(photos) == 9 and set(train_photos) == set(val_photos) == photos
    share = len(val_photos) / (len(val_photos) + len(train_photos))
    for photo in photos:  # each photo's val share is the overall one, within rounding of a patch
        n_train, n_val = train_photos.count(photo), val_photos.count(photo)
        assert abs(n_val - share * (n_train + n_val)) <= 1 + 0.1 * (n_train + n_val), photo


def test_train_and_val_hold_content_of_equal_difficulty_for_bicubic(embedded):
    """Same LR kernel on both sides, so only the content differs. The margin is 3 standard errors
    of the val mean, photo by photo (the split is stratified by photo): a split by photo, as before,
    was 10.8 dB apart (35.25 vs 24.45); this one must agree to within sampling noise."""
    train = SRPairs(downscale(embedded.train.hr), embedded.train.hr, embedded.train.names)
    per_image = {}
    for pairs in (train, embedded.val):  # train's LR remade by downscale, as bicubic_psnr(kernel=) does
        scores = metrics.psnr(bicubic_upscale(to_float(pairs.lr)), to_float(pairs.hr)).tolist()
        for name, score in zip(pairs.names, scores):
            per_image.setdefault(_photo(name), []).append(score)
    val_counts = {p: sum(_photo(n) == p for n in embedded.val.names) for p in per_image}
    n_val = sum(val_counts.values())
    std_err = sum((val_counts[p] / n_val) ** 2 * np.var(s) / val_counts[p] for p, s in per_image.items()) ** 0.5
    gap = bicubic_psnr(embedded.train, kernel="sr-search") - bicubic_psnr(embedded.val)
    assert 0.1 < std_err < 1.0  # the margin itself is a sane size
    assert abs(gap) < 3 * std_err


def test_embedded_val_lr_is_downscaled_hr_and_flat_patches_are_dropped(embedded):
    assert torch.equal(embedded.val.lr, downscale(embedded.val.hr))
    gray = embedded.train.hr.float().mean(dim=1)
    assert gray.flatten(1).std(dim=1).min() > 3.0  # the retina's black corners are gone


def test_each_train_lr_comes_from_its_patch_kernel_and_all_kernels_are_used(embedded):
    kernels = [train_kernel(name) for name in embedded.train.names]
    assert set(kernels) == set(LR_KERNELS)
    assert min(kernels.count(k) for k in LR_KERNELS) > len(kernels) / 6  # a real mix, not a token one
    for kernel in LR_KERNELS:
        idx = [i for i, k in enumerate(kernels) if k == kernel][:8]
        assert torch.equal(embedded.train.lr[idx], downscale_with(embedded.train.hr[idx], kernel))
    assert train_kernel("astronaut_r0000_c0000") == train_kernel("astronaut_r0000_c0000")


def test_val_bands_keep_train_rows_and_short_photos_put_the_band_on_top():
    for h in (256, 300, 400, 512, 872, 1411):
        bands = patches.val_bands(h)
        train, val = patches.band_split(h, 256, bands)
        assert train and val, h
        assert all(top % patches.TRAIN_STRIDE == 0 and 0 <= top <= h - 128 for top in bands)
    assert patches.val_bands(300) == (0,)  # a centred band would leave no room for a train row
    assert len(patches.val_bands(1411)) == 3
    with pytest.raises(ValueError, match="at least 256 rows"):
        patches.val_bands(200)


def test_balance_thins_the_side_over_its_share_evenly():
    keep_train, keep_val = patches.balance(100, 60, share=0.2, cap=None)
    assert len(keep_train) == 100 and len(keep_val) == 25 and keep_val[0] == 0 and keep_val[-1] == 59
    keep_train, keep_val = patches.balance(100, 5, share=0.2, cap=None)
    assert len(keep_train) == 20 and len(keep_val) == 5
    assert [len(k) for k in patches.balance(1, 9)] == [1, 1]  # never empties a side


def test_balance_caps_a_big_photo_on_both_sides_alike():
    keep_train, keep_val = patches.balance(200, 50, share=0.2, cap=30)
    assert len(keep_train) == 30 and len(keep_val) == 8  # 30 * 0.25 = 7.5, rounded
    assert (keep_train[0], keep_train[-1], keep_val[0], keep_val[-1]) == (0, 199, 0, 49)  # spread evenly
    with pytest.raises(ValueError, match="cap=0"):
        patches.balance(10, 3, cap=0)


def test_no_photo_dominates_train_or_val(embedded):
    for pairs in (embedded.train, embedded.val):
        counts = Counter(_photo(n) for n in pairs.names)
        top_two = sum(sorted(counts.values())[-2:])
        assert max(counts.values()) <= patches.PHOTO_CAP and top_two / len(pairs) < 0.3, counts


def test_bicubic_psnr_is_the_mean_of_per_image_psnr():
    hr = torch.from_numpy(np.stack([_rgb(128, 128, i) for i in range(3)])).permute(0, 3, 1, 2).contiguous()
    pairs = SRPairs(downscale(hr), hr, ("a", "b", "c"))
    per_image = metrics.psnr(bicubic_upscale(to_float(pairs.lr)), to_float(hr))
    assert bicubic_psnr(pairs, batch=2) == pytest.approx(per_image.mean().item(), abs=1e-9)
    assert bicubic_psnr(pairs, kernel="sr-search") == pytest.approx(per_image.mean().item(), abs=1e-9)
    other = SRPairs(downscale_with(hr, "opencv"), hr, pairs.names)  # the kernel remakes the LR
    assert bicubic_psnr(other, kernel="sr-search") == pytest.approx(bicubic_psnr(pairs), abs=1e-9)
    assert abs(bicubic_psnr(other) - bicubic_psnr(pairs)) > 0.01
    with pytest.raises(ValueError, match="at least one pair"):
        bicubic_psnr(SRPairs(hr[:0], hr[:0], ()))


# --- tensor ops -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["smooth", "noise"])  # noise would alias without antialiasing
def test_downscale_matches_pil_antialiased_bicubic(kind):
    y, x = np.mgrid[0:256, 0:256]
    smooth = np.stack([128 + 100 * np.sin(x / 17), 128 + 100 * np.cos(y / 23), (x + y) / 2], -1)
    image = smooth.clip(0, 255).astype(np.uint8) if kind == "smooth" else _rgb(256, 256)
    ours = downscale(torch.from_numpy(image).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    pil = np.asarray(Image.fromarray(image).resize((64, 64), Image.BICUBIC))
    assert ours.shape == (64, 64, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - pil.astype(int)).max() <= 2  # PIL rounds between its two passes


def test_downscale_keeps_constant_images_and_rejects_sizes_not_divisible_by_4():
    flat = torch.full((2, 3, 64, 96), 77, dtype=torch.uint8)
    assert torch.equal(downscale(flat), torch.full((2, 3, 16, 24), 77, dtype=torch.uint8))
    with pytest.raises(ValueError, match="divisible by 4"):
        downscale(torch.zeros(3, 30, 32, dtype=torch.uint8))


def test_lr_kernels_agree_on_flat_images_and_the_opencv_one_aliases_fine_detail():
    flat = torch.full((1, 3, 64, 64), 90, dtype=torch.uint8)
    for kernel in LR_KERNELS:
        assert torch.equal(downscale_with(flat, kernel), torch.full((1, 3, 16, 16), 90, dtype=torch.uint8))
    # Vertical stripes finer than the LR grid (columns 1 and 2 of every 4 on): antialiased kernels
    # average them to mid-gray; OpenCV-style cubic samples between HR columns 4i+1 and 4i+2 without
    # antialiasing, sees only the bright ones, and aliases the pattern into a wrong, white, tone.
    stripes = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    stripes[..., 1::4] = stripes[..., 2::4] = 255
    lr = {k: downscale_with(stripes, k)[0, 0, 5, 2:-2].int() for k in LR_KERNELS}  # away from the borders
    assert lr["opencv"].tolist() == [255] * 12
    for kernel in ("sr-search", "pil"):
        assert (lr[kernel] - 128).abs().max() <= 4
    assert torch.equal(downscale_with(stripes, "sr-search"), downscale(stripes))


def test_downscale_with_an_unknown_kernel_names_the_choices():
    with pytest.raises(ValueError, match="unknown LR kernel 'lanczos'.*opencv"):
        downscale_with(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "lanczos")


def test_bicubic_upscale_is_4x_and_clamped_to_unit_range():
    lr = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    lr[:, :, ::2, ::2] = 0.0  # a checkerboard-ish image makes bicubic overshoot
    up = bicubic_upscale(lr)
    assert up.shape == (2, 3, 32, 32) and up.min() >= 0 and up.max() <= 1
    assert torch.allclose(bicubic_upscale(torch.full((1, 3, 4, 4), 0.5)), torch.full((1, 3, 16, 16), 0.5))


def _lr_hr_batch(n):
    """LR with all-distinct pixels, HR = its nearest-neighbour 4x upsample (so HR[::4, ::4] == LR)."""
    lr = torch.randperm(n * 3 * 8 * 8, generator=torch.Generator().manual_seed(1)).reshape(n, 3, 8, 8)
    hr = lr.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    return lr.float(), hr.float()


def test_augment_applies_the_same_op_to_lr_and_hr_and_only_moves_pixels():
    lr, hr = _lr_hr_batch(16)
    lr_before, hr_before = lr.clone(), hr.clone()
    lr_aug, hr_aug = augment_batch(lr, hr, torch.Generator().manual_seed(0))
    assert torch.equal(hr_aug[:, :, ::4, ::4], lr_aug)
    assert torch.equal(lr_aug.flatten(1).sort(dim=1).values, lr.flatten(1).sort(dim=1).values)
    assert not torch.equal(lr_aug, lr)  # 16 samples: at least one was transformed
    assert torch.equal(lr, lr_before) and torch.equal(hr, hr_before)  # inputs untouched


def test_augment_uses_all_8_ops_and_is_reproducible_from_the_generator():
    lr, hr = _lr_hr_batch(64)
    lr_aug, _ = augment_batch(lr, hr, torch.Generator().manual_seed(5))
    ops = set()
    for i in range(64):
        candidates = [lr[i].flip(-1) if k >= 4 else lr[i] for k in range(8)]
        candidates = [torch.rot90(c, k % 4, dims=(-2, -1)) for k, c in enumerate(candidates)]
        ops |= {k for k, c in enumerate(candidates) if torch.equal(c, lr_aug[i])}
    assert ops == set(range(8))
    again, _ = augment_batch(lr, hr, torch.Generator().manual_seed(5))
    other, _ = augment_batch(lr, hr, torch.Generator().manual_seed(6))
    assert torch.equal(again, lr_aug) and not torch.equal(other, lr_aug)


def test_augment_works_on_uint8():
    lr, hr = _lr_hr_batch(4)
    lr_aug, hr_aug = augment_batch(lr.to(torch.uint8), hr.to(torch.uint8))
    assert lr_aug.dtype == hr_aug.dtype == torch.uint8
    assert torch.equal(hr_aug[:, :, ::4, ::4], lr_aug)


# --- folder layouts ---------------------------------------------------------------------------


def test_paired_folder_round_trips_pixels_names_and_test_set(tmp_path):
    root = _paired_root(tmp_path)
    got = load_dataset(root, progress=_quiet)
    assert got.train.names == ("train00", "train01", "train02") and got.val.names == ("val00", "val01")
    assert got.test is not None and got.test.names == ("test00", "test01") and not hasattr(got.test, "hr")
    assert torch.equal(got.train.lr[1], _chw(root / "train/lr/train01.png"))
    assert torch.equal(got.val.hr[0], _chw(root / "val/hr/val00.png"))
    assert torch.equal(got.test.lr[1], _chw(root / "test/lr/test01.png"))
    assert got.source == str(root.resolve())
    cached = load_dataset(root, cache_dir=tmp_path / "cache", progress=_quiet)
    for a, b in [(got.train.hr, cached.train.hr), (got.val.lr, cached.val.lr), (got.test.lr, cached.test.lr)]:
        assert torch.equal(a, b)
    assert cached.train.names == got.train.names and cached.source == got.source


def test_paired_folder_without_test_dir_has_no_test_set(tmp_path):
    root = _paired_root(tmp_path, n_test=0)
    assert load_dataset(root, progress=_quiet).test is None


def test_hr_only_folder_is_cut_into_patches_and_split_by_source_image(tmp_path):
    root = _hr_only_root(tmp_path, [(256, 384), (128, 128), (200, 300), (128, 256), (300, 200), (128, 128)])
    got = load_dataset(root, progress=_quiet)
    sources = lambda names: {n.split("_r")[0] for n in names}  # noqa: E731
    assert sources(got.val.names) == {"photo4"}  # every 5th image in name order
    assert sources(got.train.names) == {"photo0", "photo1", "photo2", "photo3", "photo5"}
    assert len(got.train) == 6 + 1 + 2 + 2 + 1 and len(got.val) == 2  # stride 128, no overlap
    i = got.train.names.index("photo0_r0128_c0256")
    assert torch.equal(got.train.hr[i], torch.from_numpy(_rgb(256, 384, 0)[128:, 256:]).permute(2, 0, 1))
    assert torch.equal(got.val.lr, downscale(got.val.hr))  # val: the one kernel metrics are measured on
    for i, name in enumerate(got.train.names):  # train: each patch's own kernel
        assert torch.equal(got.train.lr[i], downscale_with(got.train.hr[i], train_kernel(name)))


def test_hr_only_folder_with_two_photos_puts_one_on_each_side_and_reads_jpeg(tmp_path):
    root = _hr_only_root(tmp_path, [(128, 128)])
    Image.fromarray(_rgb(128, 128, 1)).save(root / "photo1.JPG", quality=95)
    (root / "notes.txt").write_text("not an image: ignored")
    got = load_dataset(root, progress=_quiet)
    assert got.train.names == ("photo0_r0000_c0000",) and got.val.names == ("photo1_r0000_c0000",)


def test_grayscale_palette_and_opaque_rgba_are_converted_to_rgb(tmp_path):
    root = tmp_path / "modes"
    gray = _rgb(128, 128)[..., 0]
    _save(root / "a_gray.png", gray)
    Image.fromarray(gray).convert("P").save(root / "b_palette.png")
    _save(root / "c_rgba.png", np.dstack([_rgb(128, 128), np.full((128, 128), 255, np.uint8)]))
    _save(root / "d_gray16.png", gray.astype(np.uint16) * 257)  # 16-bit gray: scaled, not clipped
    got = load_dataset(root, progress=_quiet)
    hr = dict(zip(got.train.names + got.val.names, torch.cat([got.train.hr, got.val.hr])))
    expected_gray = torch.from_numpy(gray).expand(3, -1, -1)
    assert torch.equal(hr["a_gray_r0000_c0000"], expected_gray)
    assert torch.equal(hr["b_palette_r0000_c0000"], expected_gray)
    assert torch.equal(hr["c_rgba_r0000_c0000"], torch.from_numpy(_rgb(128, 128)).permute(2, 0, 1))
    assert torch.equal(hr["d_gray16_r0000_c0000"], expected_gray)


# --- bad input: DataError names the file and the rule, nothing is written ----------------------


def _truncate(path):
    path.write_bytes(path.read_bytes()[:200])


def _break_corrupt(root):
    _truncate(root / "train/hr/train01.png")
    return "train/hr/train01.png", "corrupt"


def _break_lr_size(root):
    _save(root / "val/lr/val01.png", _rgb(32, 31))
    return "val/lr/val01.png", "exactly 32x32"


def _break_hr_size(root):
    _save(root / "train/hr/train02.png", _rgb(127, 128))
    return "train/hr/train02.png", "exactly 128x128"


def _break_lr_without_hr(root):
    (root / "train/hr/train01.png").unlink()
    return "train/lr/train01.png", "no matching HR"


def _break_hr_without_lr(root):
    (root / "val/lr/val00.png").unlink()
    return "val/hr/val00.png", "no matching LR"


def _break_empty_val(root):
    for path in (root / "val/lr").iterdir():
        path.unlink()
    return "val/lr", "must not be empty"


def _break_transparent(root):
    rgba = np.dstack([_rgb(32, 32), np.full((32, 32), 255, np.uint8)])
    rgba[5, 5, 3] = 0
    _save(root / "test/lr/test00.png", rgba)
    return "test/lr/test00.png", "transparent pixels"


def _break_missing_hr_dir(root):
    for path in (root / "val/hr").iterdir():
        path.unlink()
    (root / "val/hr").rmdir()
    return "val/hr", "missing folder"


@pytest.mark.parametrize(
    "break_it",
    [_break_corrupt, _break_lr_size, _break_hr_size, _break_lr_without_hr, _break_hr_without_lr,
     _break_empty_val, _break_transparent, _break_missing_hr_dir],
)
def test_bad_paired_input_names_the_file_and_rule_and_writes_nothing(tmp_path, break_it):
    root = _paired_root(tmp_path)
    culprit, rule = break_it(root)
    cache_dir = tmp_path / "cache"
    with pytest.raises(DataError) as exc:
        prepare_dataset(root, cache_dir, progress=_quiet)
    assert str(root / culprit) in str(exc.value) and rule in str(exc.value)
    assert not cache_dir.exists()


@pytest.mark.parametrize(
    "sizes, culprit, rule",
    [([(128, 128), (100, 200), (128, 128)], "photo1.png", "at least 128x128"),
     ([(256, 256)], "photo0.png", "at least 2")],
)
def test_bad_hr_only_input_names_the_file_and_rule_and_writes_nothing(tmp_path, sizes, culprit, rule):
    root = _hr_only_root(tmp_path, sizes)
    with pytest.raises(DataError) as exc:
        prepare_dataset(root, tmp_path / "cache", progress=_quiet)
    assert str(root / culprit) in str(exc.value) and rule in str(exc.value)
    assert not (tmp_path / "cache").exists()


def test_missing_or_empty_source_folder_is_named(tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nope"))):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images found in " + re.escape(str(tmp_path / "empty"))):
        load_dataset(tmp_path / "empty")


def test_load_dataset_without_cache_dir_writes_nothing(tmp_path, monkeypatch):
    root = _paired_root(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    load_dataset(root, progress=_quiet)
    assert sorted(p for p in tmp_path.rglob("*")) == before


# --- cache ------------------------------------------------------------------------------------


def test_prepared_cache_is_reused_without_decoding_and_loads_back(tmp_path, monkeypatch):
    root, cache_dir = _paired_root(tmp_path), tmp_path / "cache"
    path = prepare_dataset(root, cache_dir, progress=_quiet)
    assert [p.name for p in cache_dir.iterdir()] == [path.name]  # no temp file left behind

    def no_decoding(path):
        raise AssertionError(f"decoded {path} although the cache was fresh")

    monkeypatch.setattr(data, "read_rgb", no_decoding)
    assert prepare_dataset(root, cache_dir, progress=_quiet) == path
    loaded = data.load_cached(path)
    assert torch.equal(loaded.train.hr[2], _chw(root / "train/hr/train02.png"))
    assert loaded.val.names == ("val00", "val01") and loaded.test.names == ("test00", "test01")
    assert torch.load(path, weights_only=True)["train_names"] == list(loaded.train.names)


def test_changing_a_file_changes_the_cache_key(tmp_path):
    root, cache_dir = _paired_root(tmp_path), tmp_path / "cache"
    first = prepare_dataset(root, cache_dir, progress=_quiet)
    touched = root / "val/lr/val00.png"
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = prepare_dataset(root, cache_dir, progress=_quiet)
    _save(touched, _rgb(32, 32, 999))  # new content, new size
    third = prepare_dataset(root, cache_dir, progress=_quiet)
    assert len({first, second, third}) == 3
    assert torch.equal(data.load_cached(third).val.lr[0], _chw(touched))


def test_damaged_cache_file_is_named(tmp_path):
    bad = tmp_path / "sr-data-bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=re.escape(str(bad))):
        data.load_cached(bad)


def test_progress_reports_counts_for_big_folders(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    tile = _rgb(128, 128)
    for i in range(200):
        Image.fromarray(tile).save(root / f"p{i:03d}.png", compress_level=0)
    lines = []
    prepare_dataset(root, tmp_path / "cache", progress=lines.append)
    counts = [line for line in lines if line.startswith("preparing data: ")]
    assert 10 <= len(counts) <= 25  # about every 5%
    assert counts[-1] == "preparing data: 200/200 images"
    assert lines[-1].startswith("prepared data: 160 train / 40 val")
