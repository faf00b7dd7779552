"""Device-side augmentation: one gather per tensor must be exactly the 8 dihedral ops, the same on LR
and HR, drawn from a generator whose state makes the draws resumable."""
import pytest
import torch

from sr_core.augment import (NUM_OPS, apply_ops, augment_batch, augment_batch_host, dihedral_maps, epoch_draws,
                             make_generator)
from sr_core.dihedral import dihedral

CPU = torch.device("cpu")


@pytest.mark.parametrize("size", [32, 128])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_each_op_is_exactly_the_dihedral_symmetry(size, dtype):
    g = torch.Generator().manual_seed(size)
    images = (torch.rand(NUM_OPS, 3, size, size, generator=g) * 255).to(dtype)
    ops = torch.arange(NUM_OPS)
    out = apply_ops(images, ops)
    for op in range(NUM_OPS):
        assert torch.equal(out[op], dihedral(images[op], op)), op
    assert out.dtype == dtype and torch.equal(images, images.clone())  # inputs untouched


def test_the_eight_ops_are_eight_different_permutations():
    maps = dihedral_maps(4, CPU)
    assert maps.shape == (NUM_OPS, 16)
    assert len({tuple(m.tolist()) for m in maps}) == NUM_OPS
    assert all(sorted(m.tolist()) == list(range(16)) for m in maps)


def test_lr_and_hr_of_a_pair_get_the_same_op():
    # HR = nearest x4 of LR. Nearest upsampling commutes with every symmetry of the square, so the
    # relation survives augmentation only if each pair was turned by the same op.
    g = torch.Generator().manual_seed(0)
    lr = torch.randint(0, 256, (64, 3, 32, 32), generator=g, dtype=torch.uint8)
    hr = lr.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    ops = torch.randint(0, NUM_OPS, (64,), generator=g)
    lr_aug, hr_aug = augment_batch(lr, hr, ops)
    assert torch.equal(hr_aug, lr_aug.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3))
    assert not torch.equal(lr_aug, lr)  # something was turned


def test_epoch_draws_use_all_eight_ops_and_a_permutation():
    gen = make_generator(CPU, 3)
    order, ops = epoch_draws(gen, n_train=500, per_epoch=400, augment=True)
    assert order.shape == ops.shape == (400,)
    assert len(set(order.tolist())) == 400 and 0 <= order.min() and order.max() < 500
    assert set(ops.tolist()) == set(range(NUM_OPS))
    assert epoch_draws(gen, 500, 400, augment=False)[1] is None


def test_draws_resume_from_the_generator_state():
    gen = make_generator(CPU, 7)
    epoch_draws(gen, 100, 100, augment=True)
    state = gen.get_state()
    expected = epoch_draws(gen, 100, 100, augment=True)
    resumed = make_generator(CPU, 12345)
    resumed.set_state(state)
    got = epoch_draws(resumed, 100, 100, augment=True)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="square"):
        apply_ops(torch.zeros(2, 3, 4, 8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="one op per image"):
        apply_ops(torch.zeros(2, 3, 4, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="as many LR as HR"):
        augment_batch(torch.zeros(2, 3, 4, 4), torch.zeros(3, 3, 16, 16), torch.zeros(2, dtype=torch.long))


# --- the host reference path (FastPaths.device_rng off) ---------------------------------------
def _lr_hr_batch(n):
    """LR with all-distinct pixels, HR = its nearest-neighbour 4x upsample (so HR[::4, ::4] == LR)."""
    lr = torch.randperm(n * 3 * 8 * 8, generator=torch.Generator().manual_seed(1)).reshape(n, 3, 8, 8)
    hr = lr.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    return lr.float(), hr.float()


def test_host_augment_applies_the_same_op_to_lr_and_hr_and_only_moves_pixels():
    lr, hr = _lr_hr_batch(16)
    lr_before, hr_before = lr.clone(), hr.clone()
    lr_aug, hr_aug = augment_batch_host(lr, hr, torch.Generator().manual_seed(0))
    assert torch.equal(hr_aug[:, :, ::4, ::4], lr_aug)
    assert torch.equal(lr_aug.flatten(1).sort(dim=1).values, lr.flatten(1).sort(dim=1).values)
    assert not torch.equal(lr_aug, lr)  # 16 samples: at least one was transformed
    assert torch.equal(lr, lr_before) and torch.equal(hr, hr_before)  # inputs untouched


def test_host_augment_uses_all_8_ops_and_is_reproducible_from_the_generator():
    lr, hr = _lr_hr_batch(64)
    lr_aug, _ = augment_batch_host(lr, hr, torch.Generator().manual_seed(5))
    ops = set()
    for i in range(64):
        candidates = [lr[i].flip(-1) if k >= 4 else lr[i] for k in range(8)]
        candidates = [torch.rot90(c, k % 4, dims=(-2, -1)) for k, c in enumerate(candidates)]
        ops |= {k for k, c in enumerate(candidates) if torch.equal(c, lr_aug[i])}
    assert ops == set(range(8))
    again, _ = augment_batch_host(lr, hr, torch.Generator().manual_seed(5))
    other, _ = augment_batch_host(lr, hr, torch.Generator().manual_seed(6))
    assert torch.equal(again, lr_aug) and not torch.equal(other, lr_aug)


def test_host_augment_works_on_uint8():
    lr, hr = _lr_hr_batch(4)
    lr_aug, hr_aug = augment_batch_host(lr.to(torch.uint8), hr.to(torch.uint8))
    assert lr_aug.dtype == hr_aug.dtype == torch.uint8
    assert torch.equal(hr_aug[:, :, ::4, ::4], lr_aug)


# -- rgb_permute: the channels in one of 6 orders as well, the same on LR and HR ------------------
def test_each_of_the_48_ops_is_a_dihedral_symmetry_then_a_channel_order():
    from sr_core.augment import RGB_ORDERS
    g = torch.Generator().manual_seed(4)
    n = NUM_OPS * len(RGB_ORDERS)
    images = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    out = apply_ops(images, torch.arange(n), rgb_permute=True)
    for op in range(n):
        expected = dihedral(images[op], op % NUM_OPS)[RGB_ORDERS[op // NUM_OPS]]
        assert torch.equal(out[op], expected), op
    assert RGB_ORDERS[0].tolist() == [0, 1, 2] and len({tuple(o.tolist()) for o in RGB_ORDERS}) == 6


def test_rgb_permute_draws_all_48_ops_and_leaves_the_plain_draws_as_they_were():
    with_perm = epoch_draws(make_generator(CPU, 3), 500, 400, augment=True, rgb_permute=True)[1]
    assert set(with_perm.tolist()) == set(range(NUM_OPS * 6))
    plain = epoch_draws(make_generator(CPU, 3), 500, 400, augment=True)[1]
    assert torch.equal(plain, epoch_draws(make_generator(CPU, 3), 500, 400, True, False)[1])
    assert plain.max() < NUM_OPS


@pytest.mark.parametrize("host", [False, True])
def test_rgb_permute_turns_and_reorders_lr_and_hr_alike(host):
    lr, hr = _lr_hr_batch(64)
    if host:
        lr_aug, hr_aug = augment_batch_host(lr, hr, torch.Generator().manual_seed(2), rgb_permute=True)
    else:
        ops = torch.randint(0, NUM_OPS * 6, (64,), generator=torch.Generator().manual_seed(2))
        lr_aug, hr_aug = augment_batch(lr, hr, ops, rgb_permute=True)
    assert torch.equal(hr_aug[:, :, ::4, ::4], lr_aug)  # same op on both
    # some sample's first channel now holds what was another channel
    assert any(not torch.equal(lr_aug[i, 0].sort().values, lr[i, 0].sort().values) for i in range(64))
