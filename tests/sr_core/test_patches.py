"""sr_core.patches: the band split of the embedded photos, balancing and the per-photo cap."""
import pytest

from sr_core import patches


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
