"""sr_core.throughput: the synthetic step the cost estimate measures a device with."""
import torch

from sr_core.models import flops_per_image
from sr_core.throughput import measure_device_flops, peak_tflops, reference_step


def test_the_reference_step_reports_rates_that_follow_from_its_flops():
    result = reference_step("residual", 0, 4, batch_size=2, seconds=0.05, device="cpu")
    fpi = flops_per_image("residual", 0, 4)
    assert result["train_tflops"] == 3 * fpi * result["train_images_per_s"] / 1e12
    assert result["infer_tflops"] == fpi * result["infer_images_per_s"] / 1e12
    assert result["precision"] == "fp32" and result["device"] == "cpu" and "train_mfu" not in result


def test_measuring_a_device_leaves_the_callers_rng_and_threads_alone():
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    measure_device_flops("cpu", threads=1, seconds=0.05)
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == threads


def test_a_cpu_has_no_data_sheet_peak():
    assert peak_tflops("cpu") == (None, "none (CPU: see the measured GEMM)")
