"""The measured cost model (search.run.cost_model) on synthetic timings, and the estimate it prices."""
import pytest

from search.run.cost_model import CostModel, Line, fit, fit_line
from search.run.estimate import estimate_study
from search.study import parse_study
from sr_core.models import flops_per_image


def _row(arch, blocks, channels, step_s, eval_image_s, batch=4):
    return {"arch": arch, "blocks": blocks, "channels": channels, "batch_size": batch,
            "flops_per_image": flops_per_image(arch, blocks, channels), "step_s": step_s,
            "eval_image_s": eval_image_s, "probe_s": 0.5}


def test_a_line_with_a_launch_overhead_is_recovered_from_its_points():
    xs = [1e9, 4e9, 9e9]
    line = fit_line(xs, [0.002 + 1e-11 * x for x in xs])
    assert line.intercept == pytest.approx(0.002) and line.slope == pytest.approx(1e-11)
    assert fit_line([2e9], [0.04]) == Line(0.0, 0.04 / 2e9)  # one point: through the origin
    assert fit_line(xs, [0.5, 0.4, 0.3]).slope == 0.0  # never faster for more work
    assert fit_line(xs, [0.0, 0.03, 0.08]).intercept == 0.0  # never a negative overhead


def test_each_architecture_gets_its_own_line_and_an_epoch_is_its_steps_and_its_evaluation():
    # residual: 2 ms of overhead a step plus 1e-11 s a FLOP; refiner twice as slow per FLOP
    rows = []
    for arch, rate in (("residual", 1e-11), ("refiner", 2e-11)):
        for blocks, channels in ((1, 8), (2, 16), (4, 32)):
            fpi = flops_per_image(arch, blocks, channels)
            rows.append(_row(arch, blocks, channels, 0.002 + rate * 3 * fpi * 4, 0.0005 + rate * fpi))
    model = fit(rows, batch_size=4, speedup=1.8)
    assert model.probe_seconds == 3.0 and model.speedup == 1.8
    fpi = flops_per_image("refiner", 2, 8)  # a shape the probe never timed
    assert model.step_s("refiner", 2, 8) == pytest.approx(0.002 + 2e-11 * 3 * fpi * 4)
    epoch = model.epoch_s("refiner", 2, 8, train_images=216, val_images=56)
    assert epoch == pytest.approx(54 * model.step_s("refiner", 2, 8) + 56 * model.eval_image_s("refiner", 2, 8))


def test_the_estimate_prices_every_part_and_the_final_step_on_its_threads():
    study = parse_study("""
[space]
arch = "residual"
blocks = [1, 2]
channels = [8, 16]
lr = [1e-3]
eta_min = 1e-5
[search]
sampler = "grid"
[train]
epochs = 4
batch_size = 4
[pruner]
kind = "halving"
grace_period = 1
reduction_factor = 2
[final]
epochs = 10
""", "t.toml", "t")
    model = CostModel({"residual": Line(0.01, 0.0)}, {"residual": Line(0.001, 0.0)}, 4, speedup=2.0)
    estimate = estimate_study(study, 40, 10, "cpu", 1e10, 2, model)
    epoch = 10 * 0.01 + 10 * 0.001  # every config alike: 10 steps and 10 val images
    # halving over 4 trials, rungs 1 and 2: 2 stop at 1, 1 at 2, 1 runs 4 epochs
    assert estimate.seconds["search"] == pytest.approx((2 * 1 + 1 * 2 + 1 * 4) * epoch)
    assert estimate.seconds["final"] == pytest.approx(10 * epoch / 2.0)
    assert estimate.device_hours * 3600 == pytest.approx((8 + 5) * epoch)
    assert estimate.wall_hours * 3600 == pytest.approx(8 * epoch / 2 + 5 * epoch + estimate.seconds["orchestration"])
    assert any(line.startswith("cost model   : real steps of 0 shapes") for line in estimate.lines())
