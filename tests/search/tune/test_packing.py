"""gpus_per_trial = "auto": the fraction of each config from its predicted memory and compute share."""
import pytest
from _study_toml import study_toml

from search.study import StudyError, parse_study
from search.tune.packing import plan_packing, shape_of
from sr_core.memory import GIB, device_need, predict_trial
from sr_core.trial_config import TrialConfig


def config(blocks, channels, batch=16):
    return TrialConfig(arch="residual", blocks=blocks, channels=channels, batch_size=batch, epochs=2)


def test_small_configs_pack_and_big_ones_get_a_whole_gpu_or_are_skipped():
    small, big, huge = config(8, 64), config(24, 612), config(24, 712, batch=64)
    packing = plan_packing([small, big, huge, small], 80 * GIB, train_images=7000, val_images=1250)
    assert set(packing.fractions) == {shape_of(c.__dict__) for c in (small, big, huge)}
    assert packing.fraction(small.__dict__) < 1.0 <= packing.fraction(big.__dict__)
    # k trials at 1/k never need more memory than the GPU has
    k = round(1 / packing.fraction(small.__dict__))
    need = device_need(predict_trial(small, train_images=7000, val_images=1250))
    assert k * need <= 80 * GIB
    tiny_gpu = plan_packing([small, huge], 8 * GIB, train_images=7000, val_images=1250)
    assert shape_of(huge.__dict__) in tiny_gpu.too_big and shape_of(small.__dict__) not in tiny_gpu.too_big
    assert "does not fit in 8.00 GiB" in tiny_gpu.too_big[shape_of(huge.__dict__)]
    (packed, skipped) = tiny_gpu.lines()
    assert packed.startswith("packing      : gpus_per_trial auto on 8.0 GiB GPUs: 1 at ")
    assert skipped.startswith("skipped      : residual b24 c712 batch 64: predicted peak")


def test_the_study_takes_auto_or_a_number_and_names_the_field_otherwise():
    def study(**resources):
        text = study_toml(search={"sampler": "grid"}, space={"arch": "residual"}, resources=resources)
        return parse_study(text, "s.toml", "s")
    assert study(gpus_per_trial="auto", gpu_memory_gib=80).resources.gpus_per_trial == "auto"
    assert study(gpus_per_trial=0.25).resources.gpus_per_trial == 0.25
    with pytest.raises(StudyError, match=r'\[resources\]\.gpus_per_trial: must be >= 0 or "auto"'):
        study(gpus_per_trial="half")
