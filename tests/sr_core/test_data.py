"""sr_core.data: the embedded set, folder layouts, bad input, the cache."""

import os
import re
from collections import Counter

import numpy as np
import pytest
import torch
from _files import chw, hr_only_root, paired_root, quiet, rgb, save

from sr_core.photos import Photos, photo_views
from PIL import Image

from sr_core import data, metrics, patches
from sr_core.baselines import bicubic_psnr, bicubic_scores
from sr_core.data import DataError, SRPairs, load_dataset, prepare_dataset, train_kernel
from sr_core.pixels import to_float
from sr_core.resize import LR_KERNELS, bicubic_upscale, downscale, downscale_with

# --- embedded ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded():
    return load_dataset("embedded", progress=quiet)


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


def test_no_photo_dominates_train_or_val(embedded):
    for pairs in (embedded.train, embedded.val):
        counts = Counter(_photo(n) for n in pairs.names)
        top_two = sum(sorted(counts.values())[-2:])
        assert max(counts.values()) <= patches.PHOTO_CAP and top_two / len(pairs) < 0.3, counts


def test_bicubic_psnr_is_the_mean_of_per_image_psnr():
    hr = torch.from_numpy(np.stack([rgb(128, 128, i) for i in range(3)])).permute(0, 3, 1, 2).contiguous()
    pairs = SRPairs(downscale(hr), hr, ("a", "b", "c"))
    per_image = metrics.psnr(bicubic_upscale(to_float(pairs.lr)), to_float(hr))
    assert bicubic_psnr(pairs, batch=2) == pytest.approx(per_image.mean().item(), abs=1e-9)
    assert bicubic_psnr(pairs, kernel="sr-search") == pytest.approx(per_image.mean().item(), abs=1e-9)
    other = SRPairs(downscale_with(hr, "opencv"), hr, pairs.names)  # the kernel remakes the LR
    assert bicubic_psnr(other, kernel="sr-search") == pytest.approx(bicubic_psnr(pairs), abs=1e-9)
    assert abs(bicubic_psnr(other) - bicubic_psnr(pairs)) > 0.01
    with pytest.raises(ValueError, match="at least one pair"):
        bicubic_psnr(SRPairs(hr[:0], hr[:0], ()))


# --- folder layouts ---------------------------------------------------------------------------


def test_paired_folder_round_trips_pixels_names_and_test_set(tmp_path):
    root = paired_root(tmp_path)
    got = load_dataset(root, progress=quiet)
    assert got.train.names == ("train00", "train01", "train02") and got.val.names == ("val00", "val01")
    assert got.test is not None and got.test.names == ("test00", "test01") and not hasattr(got.test, "hr")
    assert torch.equal(got.train.lr[1], chw(root / "train/lr/train01.png"))
    assert torch.equal(got.val.hr[0], chw(root / "val/hr/val00.png"))
    assert torch.equal(got.test.lr[1], chw(root / "test/lr/test01.png"))
    assert got.source == str(root.resolve())
    cached = load_dataset(root, cache_dir=tmp_path / "cache", progress=quiet)
    for a, b in [(got.train.hr, cached.train.hr), (got.val.lr, cached.val.lr), (got.test.lr, cached.test.lr)]:
        assert torch.equal(a, b)
    assert cached.train.names == got.train.names and cached.source == got.source


def test_paired_folder_without_test_dir_has_no_test_set(tmp_path):
    root = paired_root(tmp_path, n_test=0)
    assert load_dataset(root, progress=quiet).test is None


def test_hr_only_folder_asked_for_fixed_patches_is_cut_into_them_and_split_by_source_image(tmp_path):
    root = hr_only_root(tmp_path, [(256, 384), (128, 128), (200, 300), (128, 256), (300, 200), (128, 128)])
    got = load_dataset(root, progress=quiet, crops="fixed")
    sources = lambda names: {n.split("_r")[0] for n in names}  # noqa: E731
    assert sources(got.val.names) == {"photo4"}  # every 5th image in name order
    assert sources(got.train.names) == {"photo0", "photo1", "photo2", "photo3", "photo5"}
    assert len(got.train) == 6 + 1 + 2 + 2 + 1 and len(got.val) == 2  # stride 128, no overlap
    i = got.train.names.index("photo0_r0128_c0256")
    assert torch.equal(got.train.hr[i], torch.from_numpy(rgb(256, 384, 0)[128:, 256:]).permute(2, 0, 1))
    assert torch.equal(got.val.lr, downscale(got.val.hr))  # val: the one kernel metrics are measured on
    for i, name in enumerate(got.train.names):  # train: each patch's own kernel
        assert torch.equal(got.train.lr[i], downscale_with(got.train.hr[i], train_kernel(name)))


def test_hr_only_folder_keeps_its_train_photos_whole_for_random_crops_and_cuts_val_as_before(tmp_path):
    sizes = [(256, 384), (128, 128), (200, 300), (128, 256), (300, 200), (128, 128)]
    root = hr_only_root(tmp_path, sizes)
    got, fixed = load_dataset(root, progress=quiet), load_dataset(root, progress=quiet, crops="fixed")
    assert isinstance(got.train, Photos) and got.train.names == ("photo0", "photo1", "photo2", "photo3", "photo5")
    assert got.train.sizes.tolist() == [list(sizes[i]) for i in (0, 1, 2, 3, 5)]
    views = photo_views(got.train)
    assert torch.equal(views[2], torch.from_numpy(rgb(200, 300, 2)).permute(2, 0, 1))  # photo2, whole
    assert len(got.train) == len(fixed.train) == 12  # a default epoch: as many crops as fixed patches
    assert got.val.names == fixed.val.names and torch.equal(got.val.hr, fixed.val.hr)  # val: fixed, as before
    assert torch.equal(got.val.lr, fixed.val.lr)


def test_a_val_folder_takes_val_and_every_photo_of_the_data_trains(tmp_path):
    root = hr_only_root(tmp_path / "train", [(256, 256), (200, 300)])
    val = hr_only_root(tmp_path / "val", [(128, 256)])
    got = load_dataset(root, progress=quiet, val_source=val)
    assert got.train.names == ("photo0", "photo1") and got.val.names == ("photo0_r0000_c0000", "photo0_r0000_c0128")
    cached = load_dataset(root, cache_dir=tmp_path / "cache", progress=quiet, val_source=val)
    assert torch.equal(cached.train.pixels, got.train.pixels) and torch.equal(cached.val.hr, got.val.hr)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    load_dataset(root, cache_dir=tmp_path / "cache", progress=quiet)  # no val folder: another cache
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2


@pytest.mark.parametrize("source, kwargs, message", [
    ("embedded", {"crops": "random"}, "random crops needs an HR-only data folder"),
    ("paired", {"val_source": "val"}, "a val folder needs an HR-only data folder"),
    ("hr", {"crops": "tiles"}, "crops must be one of ['random', 'fixed']"),
    ("hr", {"val_source": "missing"}, "val folder"),
])
def test_crops_and_val_folders_are_refused_where_they_do_not_apply(tmp_path, source, kwargs, message):
    roots = {"embedded": "embedded", "paired": paired_root(tmp_path), "hr": hr_only_root(tmp_path / "h", [(128, 128)])}
    hr_only_root(tmp_path / "val", [(128, 128)])
    kwargs = {k: (tmp_path / v if k == "val_source" else v) for k, v in kwargs.items()}
    with pytest.raises(DataError, match=re.escape(message)):
        prepare_dataset(roots[source], tmp_path / "cache", progress=quiet, **kwargs)
    assert not (tmp_path / "cache").exists()


def test_hr_only_folder_with_two_photos_puts_one_on_each_side_and_reads_jpeg(tmp_path):
    root = hr_only_root(tmp_path, [(128, 128)])
    Image.fromarray(rgb(128, 128, 1)).save(root / "photo1.JPG", quality=95)
    (root / "notes.txt").write_text("not an image: ignored")
    got = load_dataset(root, progress=quiet, crops="fixed")
    assert got.train.names == ("photo0_r0000_c0000",) and got.val.names == ("photo1_r0000_c0000",)


def test_grayscale_palette_and_opaque_rgba_are_converted_to_rgb(tmp_path):
    root = tmp_path / "modes"
    gray = rgb(128, 128)[..., 0]
    save(root / "a_gray.png", gray)
    Image.fromarray(gray).convert("P").save(root / "b_palette.png")
    save(root / "c_rgba.png", np.dstack([rgb(128, 128), np.full((128, 128), 255, np.uint8)]))
    save(root / "d_gray16.png", gray.astype(np.uint16) * 257)  # 16-bit gray: scaled, not clipped
    got = load_dataset(root, progress=quiet, crops="fixed")
    hr = dict(zip(got.train.names + got.val.names, torch.cat([got.train.hr, got.val.hr])))
    expected_gray = torch.from_numpy(gray).expand(3, -1, -1)
    assert torch.equal(hr["a_gray_r0000_c0000"], expected_gray)
    assert torch.equal(hr["b_palette_r0000_c0000"], expected_gray)
    assert torch.equal(hr["c_rgba_r0000_c0000"], torch.from_numpy(rgb(128, 128)).permute(2, 0, 1))
    assert torch.equal(hr["d_gray16_r0000_c0000"], expected_gray)


# --- bad input: DataError names the file and the rule, nothing is written ----------------------


def _truncate(path):
    path.write_bytes(path.read_bytes()[:200])


def _break_corrupt(root):
    _truncate(root / "train/hr/train01.png")
    return "train/hr/train01.png", "corrupt"


def _break_lr_size(root):
    save(root / "val/lr/val01.png", rgb(32, 31))
    return "val/lr/val01.png", "exactly 32x32"


def _break_hr_size(root):
    save(root / "train/hr/train02.png", rgb(127, 128))
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
    rgba = np.dstack([rgb(32, 32), np.full((32, 32), 255, np.uint8)])
    rgba[5, 5, 3] = 0
    save(root / "test/lr/test00.png", rgba)
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
    root = paired_root(tmp_path)
    culprit, rule = break_it(root)
    cache_dir = tmp_path / "cache"
    with pytest.raises(DataError) as exc:
        prepare_dataset(root, cache_dir, progress=quiet)
    assert str(root / culprit) in str(exc.value) and rule in str(exc.value)
    assert not cache_dir.exists()


@pytest.mark.parametrize(
    "sizes, culprit, rule",
    [([(128, 128), (100, 200), (128, 128)], "photo1.png", "at least 128x128"),
     ([(256, 256)], "photo0.png", "at least 2")],
)
def test_bad_hr_only_input_names_the_file_and_rule_and_writes_nothing(tmp_path, sizes, culprit, rule):
    root = hr_only_root(tmp_path, sizes)
    with pytest.raises(DataError) as exc:
        prepare_dataset(root, tmp_path / "cache", progress=quiet)
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
    root = paired_root(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    load_dataset(root, progress=quiet)
    assert sorted(p for p in tmp_path.rglob("*")) == before


# --- cache ------------------------------------------------------------------------------------


def test_prepared_cache_is_reused_without_decoding_and_loads_back(tmp_path, monkeypatch):
    root, cache_dir = paired_root(tmp_path), tmp_path / "cache"
    path = prepare_dataset(root, cache_dir, progress=quiet)
    assert [p.name for p in cache_dir.iterdir()] == [path.name]  # no temp file left behind

    def no_decoding(path):
        raise AssertionError(f"decoded {path} although the cache was fresh")

    monkeypatch.setattr(data, "read_rgb", no_decoding)
    assert prepare_dataset(root, cache_dir, progress=quiet) == path
    loaded = data.load_cached(path)
    assert torch.equal(loaded.train.hr[2], chw(root / "train/hr/train02.png"))
    assert loaded.val.names == ("val00", "val01") and loaded.test.names == ("test00", "test01")
    assert torch.load(path, weights_only=True)["train_names"] == list(loaded.train.names)


def test_changing_a_file_changes_the_cache_key(tmp_path):
    root, cache_dir = paired_root(tmp_path), tmp_path / "cache"
    first = prepare_dataset(root, cache_dir, progress=quiet)
    touched = root / "val/lr/val00.png"
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = prepare_dataset(root, cache_dir, progress=quiet)
    save(touched, rgb(32, 32, 999))  # new content, new size
    third = prepare_dataset(root, cache_dir, progress=quiet)
    assert len({first, second, third}) == 3
    assert torch.equal(data.load_cached(third).val.lr[0], chw(touched))


def test_damaged_cache_file_is_named(tmp_path):
    bad = tmp_path / "sr-data-bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=re.escape(str(bad))):
        data.load_cached(bad)


def test_progress_reports_counts_for_big_folders(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    tile = rgb(128, 128)
    for i in range(200):
        Image.fromarray(tile).save(root / f"p{i:03d}.png", compress_level=0)
    lines = []
    prepare_dataset(root, tmp_path / "cache", progress=lines.append)
    counts = [line for line in lines if line.startswith("preparing data: ")]
    assert 10 <= len(counts) <= 25  # about every 5%
    assert counts[-1] == "preparing data: 200/200 images"
    assert lines[-1].startswith("prepared data: 160 train photos (random crops) / 40 val")


def test_the_bicubic_baseline_is_the_studys_metrics_of_bicubic_upscaling():
    from sr_core.pixels import to_float
    from sr_core.resize import bicubic_upscale, downscale
    hr = torch.randint(0, 256, (5, 3, 128, 128), dtype=torch.uint8)
    pairs = SRPairs(downscale(hr), hr, tuple("abcde"))
    scores = bicubic_scores(pairs, batch=2)  # batches of 2, 2 and 1: a mean per image all the same
    pred, target = bicubic_upscale(to_float(pairs.lr)), to_float(hr)
    for name in ("mse", "psnr", "ssim"):
        assert scores[name] == pytest.approx(getattr(metrics, name)(pred, target).mean().item(), rel=1e-5)
    assert bicubic_psnr(pairs) == pytest.approx(scores["psnr"])
