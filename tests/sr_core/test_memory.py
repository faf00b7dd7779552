"""The memory model: its polynomial fit equals a direct trace, its saved activations equal an analytic
count of the conv inputs, CPU autocast saves what CUDA's would, and the packing rules keep packed
trials' memory under the device's."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sr_core.memory import (ALLOCATOR_RESERVE_FRACTION, CUDA_CONTEXT_BYTES, GIB, compare_to_measured,
                            device_need, fits, fraction_for, gpu_fraction, memory_fit, predict_memory,
                            _monomials)
from sr_core.memory_trace import trace_trial
from sr_core.models import build_model, params_count

H100 = int(79.18 * GIB)  # torch.cuda.get_device_properties(0).total_memory of the H100 80GB


@pytest.mark.parametrize("arch,blocks", [("residual", 2), ("refiner", 1)])
@pytest.mark.parametrize("c,b,e", [(16, 3, 4), (7, 5, 2)])
def test_the_fit_from_five_tiny_traces_equals_a_direct_trace_elsewhere(arch, blocks, c, b, e):
    direct = trace_trial(arch, blocks, c, b, e)
    fit = memory_fit(arch, blocks)
    x = _monomials(c, b, e)
    for phase, peak in fit.peaks(x).items():
        assert peak == max(v for v, p in zip(direct.live, direct.phases) if p == phase), phase
    assert int(fit.saved @ x) == direct.saved
    assert {k: int(v @ x) for k, v in fit.held.items()} == direct.held


def _residual_saved_bytes(blocks: int, c: int, batch: int) -> tuple[int, int]:
    """(bf16 weight copies, activations) autograd keeps for backward, counted by hand: every conv saves
    its bf16 input and weight (a LeakyReLU's output is the next conv's input: one storage), MSE its
    fp32 prediction and target; the adds, PixelShuffle and the bicubic skip save nothing."""
    lr = 32 * 32
    weights = 2 * sum(9 * ci * co for ci, co in [(3, c)] + [(c, c)] * (2 * blocks + 1) + [(c, 4 * c)] * 2 + [(c, 3)])
    conv_inputs = 3 * lr + (2 * blocks + 2) * c * lr + c * 4 * lr + c * 16 * lr  # x, 32x32s, 64x64, 128x128
    return weights, batch * (2 * conv_inputs + 2 * 4 * 3 * 16 * lr)


@pytest.mark.parametrize("blocks,c,batch", [(2, 8, 3), (3, 24, 2), (8, 64, 16)])
def test_saved_activations_are_the_conv_inputs_counted_by_hand(blocks, c, batch):
    p = predict_memory("residual", blocks, c, batch, train_images=100, val_images=10)
    assert (p.weight_casts, p.saved_activations) == _residual_saved_bytes(blocks, c, batch)


def test_params_grads_moments_and_the_best_copy_are_what_the_net_holds():
    p = predict_memory("residual", 24, 712, 16, train_images=7000, val_images=1250)
    n = params_count("residual", 24, 712)
    tensors = len(list(build_model("residual", 1, 4).parameters())) + 2 * 2 * 23  # 2 convs per extra block
    assert p.params == p.grads == p.best_copy == 4 * n
    assert p.adam == 8 * n + 4 * tensors  # two fp32 moments and fused Adam's fp32 step per tensor
    peak = p.total_bytes - p.data - p.workspace
    assert peak >= p.params + p.grads + p.adam + p.best_copy + p.weight_casts + p.saved_activations


class _Dtypes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seen = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):
            self.seen.setdefault(func.__name__.split(".")[0], set()).add(out.dtype)
        return out


def test_cpu_autocast_casts_only_the_convolutions_as_cuda_autocast_does():
    """CUDA's autocast lists put conv2d in lower precision and mse_loss in fp32, and leave LeakyReLU,
    PixelShuffle, add and the bicubic resize to their inputs' dtype. CPU autocast must agree on this
    net, or the CPU trace would save other dtypes than a GPU trial does."""
    model = build_model("residual", 1, 8)
    seen = _Dtypes()
    with seen, torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(2, 3, 32, 32))
    assert seen.seen["convolution"] == {torch.bfloat16}
    assert seen.seen["leaky_relu_"] == seen.seen["pixel_shuffle"] == {torch.bfloat16}
    assert seen.seen["upsample_bicubic2d"] == {torch.float32} and out.dtype == torch.float32
    assert seen.seen["_to_copy"] == {torch.bfloat16}  # the only casts: conv inputs and weights


def test_the_eval_batch_sets_the_peak_of_every_residual_config_at_batch_16():
    for blocks, c in [(8, 64), (24, 712)]:
        p = predict_memory("residual", blocks, c, 16, train_images=7000, val_images=1250)
        small = predict_memory("residual", blocks, c, 16, train_images=7000, val_images=1250, eval_batch=16)
        assert p.peak_phase == "eval" and small.peak_phase == "train" and small.total_bytes < p.total_bytes
    wider = predict_memory("residual", 24, 712, 64, train_images=7000, val_images=1250, eval_batch=16)
    assert wider.total_bytes > small.total_bytes


def test_the_real_h100_oom_is_predicted_not_to_fit_and_the_study_grid_fits():
    """search.bench.gpu_oom: refiner b24 c712 at batch 512 ran out of memory on the H100 (67.9 GiB allocated,
    11.1 GiB more asked for)."""
    oom = predict_memory("refiner", 24, 712, 512, train_images=512, val_images=64)
    ok, reason = fits(oom, H100)
    assert not ok and "does not fit" in reason and "refiner b24 c712 batch 512" in reason
    biggest = predict_memory("residual", 24, 712, 64, train_images=7000, val_images=1250)
    assert fits(biggest, H100)[0]
    assert device_need(biggest) == int(biggest.total_bytes * (1 + ALLOCATOR_RESERVE_FRACTION)) + CUDA_CONTEXT_BYTES


def test_gpu_fractions_pack_small_launch_bound_trials_and_keep_the_sum_under_the_device():
    small = predict_memory("residual", 8, 64, 16, train_images=7000, val_images=1250)
    assert fraction_for(small, H100) == 0.25  # compute share 0.25: four fill the GPU
    assert fraction_for(small, H100, cuda_graphs=True) == 0.5  # share 0.41: two
    assert fraction_for(predict_memory("residual", 24, 612, 16, train_images=7000, val_images=1250), H100) == 1.0
    assert gpu_fraction(30 * GIB, H100, 0.1) == 0.5  # memory allows two, not four
    assert gpu_fraction(40 * GIB, H100, 0.1) == 1.0
    assert gpu_fraction(GIB // 4, H100, 0.01) == 1 / 8
    for gib in [0.5, 1, 3, 7, 9, 17, 25, 38, 70, 90]:
        f = gpu_fraction(int(gib * GIB), H100, 0.01)
        packed = round(1 / f)
        assert packed == 1 or packed * (int(gib * GIB * (1 + ALLOCATOR_RESERVE_FRACTION)) + CUDA_CONTEXT_BYTES) <= H100


@pytest.mark.parametrize("kwargs,name", [({"compute_share": 0.0}, "compute_share"),
                                         ({"compute_share": 1.5}, "compute_share"),
                                         ({"device_bytes": 0}, "device_bytes"), ({"steps": (0, 2)}, "steps")])
def test_gpu_fraction_names_the_bad_argument(kwargs, name):
    args = {"predicted_bytes": GIB, "device_bytes": H100, "compute_share": 0.5, **kwargs}
    with pytest.raises(ValueError, match=name):
        gpu_fraction(**args)


@pytest.mark.parametrize("kwargs,name", [({"channels": 0}, "channels"), ({"batch_size": 0}, "batch_size"),
                                         ({"val_images": 0}, "val_images"), ({"precision": "int8"}, "precision"),
                                         ({"arch": "unet"}, "arch")])
def test_predict_memory_names_the_bad_argument(kwargs, name):
    args = {"arch": "residual", "blocks": 2, "channels": 8, "batch_size": 4, "train_images": 10,
            "val_images": 4, **kwargs}
    with pytest.raises(ValueError, match=name):
        predict_memory(**args)


def test_calibration_reports_ratio_and_tolerance_and_lists_unmeasured_rows():
    a = predict_memory("residual", 2, 8, 4, train_images=10, val_images=4)
    b = predict_memory("residual", 2, 16, 4, train_images=10, val_images=4)
    report = compare_to_measured([(a, int(a.total_bytes * 1.1)), (b, int(b.total_bytes * 0.5)), (a, None)])
    assert [r.get("within_tolerance") for r in report["rows"]] == [True, False, None]
    assert report["rows"][0]["ratio"] == pytest.approx(1.1, rel=1e-6) and report["rows"][2]["measured_gib"] is None
    assert (report["judged"], report["within_tolerance"]) == (2, 1)
    assert report["min_ratio"] == pytest.approx(0.5, rel=1e-6)


def test_fp32_saves_no_weight_copies_and_twice_the_activation_bytes():
    bf16 = predict_memory("residual", 2, 8, 4, train_images=10, val_images=4)
    fp32 = predict_memory("residual", 2, 8, 4, train_images=10, val_images=4, precision="fp32")
    assert fp32.weight_casts == 0
    mse_pair = 4 * 2 * 4 * 3 * 128 * 128  # the fp32 prediction and target: the same in both
    assert fp32.saved_activations - mse_pair == 2 * (bf16.saved_activations - mse_pair)
