"""The estimate counts the epochs a study's schedule trains, not every epoch of every trial."""
import dataclasses

from _study_toml import study_toml

from search.run.estimate import estimate_study, schedule_epochs
from search.study import Final, Pruner, parse_study


def study(kind="halving", insure=""):
    grid = study_toml(search={"sampler": "grid"},
                      space={"arch": "residual", "blocks": [2, 4, 6], "channels": [4, 8, 12, 16],
                             "lr": [1e-3, 2e-3, 3e-3], "eta_min": 1e-6},
                      train={"epochs": 27},
                      pruner={"kind": kind, "grace_period": 1, "reduction_factor": 3, "insure": insure})
    return parse_study(grid, "t.toml", "t")


def test_synchronous_halving_keeps_a_third_at_each_rung():
    # 36 configs, rungs 1, 3, 9 then 27: 24 stop at 1, 8 at 3, 2 at 9, 2 run all 27 epochs
    assert schedule_epochs(study()) == [(24, 1), (8, 3), (2, 9), (2, 27)]


def test_insurance_keeps_at_least_one_trial_per_value():
    # insured by blocks (3 values): 3 survive where ceil(n/3) would keep fewer
    assert schedule_epochs(study(insure="blocks")) == [(24, 1), (8, 3), (1, 9), (3, 27)]


def test_no_pruner_trains_every_epoch_and_the_final_step_adds_its_own():
    none = study(kind="none")
    assert schedule_epochs(none) == [(36, 27)]
    full = estimate_study(none, 100, 10, "cpu", 1e12, 1)
    halved = estimate_study(study(), 100, 10, "cpu", 1e12, 1)
    assert full.epochs_fraction == 1.0 and full.device_hours * full.device_flops * 3600 == full.flops_total
    assert halved.epochs_fraction == (24 * 1 + 8 * 3 + 2 * 9 + 2 * 27) / (36 * 27)
    assert halved.flops_expected == halved.flops_total * halved.epochs_fraction
    final = estimate_study(dataclasses.replace(study(), final=Final(epochs=10)), 100, 10, "cpu", 1e12, 2)
    assert final.final_flops > 0 and final.flops_expected == final.flops_total * final.epochs_fraction + final.final_flops
    # the final step runs alone: its compute is not divided by the concurrency
    assert final.wall_hours * 3600 * 1e12 == final.flops_total * final.epochs_fraction / 2 + final.final_flops


def test_asha_counts_its_rungs_below_the_last_epoch():
    asha = dataclasses.replace(study(), pruner=Pruner(kind="asha", grace_period=1, reduction_factor=3))
    assert schedule_epochs(asha) == [(24, 1), (8, 3), (2, 9), (2, 27)]


def test_the_audit_adds_what_its_trials_train_after_their_rung():
    halved = study()
    audited = dataclasses.replace(halved, pruner=dataclasses.replace(halved.pruner, audit=4))
    base, audit = (estimate_study(s, 100, 10, "cpu", 1e12, 2) for s in (halved, audited))
    # 34 pruned: 24 stopped at epoch 1, 8 at 3, 2 at 9; the picks spread over them, so the mean left
    left = (24 * 26 + 8 * 24 + 2 * 18) / 34
    per_epoch = base.flops_total / 36 / 27
    assert base.audit_flops == 0 and audit.audit_trials == 4
    assert audit.audit_flops == per_epoch * 4 * left
    assert audit.flops_expected == base.flops_expected + audit.audit_flops
    assert "the audit of 4 pruned trial(s)" in audit.lines()[1]


def test_the_eta_s_plan_keeps_the_questions_configs_at_each_rung():
    from search.rungs import planned_epochs
    from search.study import load_study
    demo = load_study("demo")
    # 18 trials, rungs 1, 2, 4 of 6 epochs; 10 question configs (one per cell) protected at every rung:
    # 8 stop at epoch 1, the 10 run to 6 (the demo of 2026-12-06 trained 10 x 6 + 8 pruned trials' 10)
    assert planned_epochs(demo) == 8 * 1 + 10 * 6
    assert planned_epochs(demo.with_overrides(questions=False)) == sum(k * e for k, e in schedule_epochs(demo))


def test_a_study_whose_trials_train_too_few_steps_to_leave_bicubic_says_so_and_what_would_do():
    from search.run.estimate import short_epochs
    demo = parse_study(study_toml(search={"sampler": "grid"},
                                  space={"arch": "residual", "blocks": 1, "channels": 8, "lr": 1e-3, "eta_min": 0},
                                  train={"epochs": 6, "batch_size": 4}), "t.toml", "t")
    assert short_epochs(demo, 216) == ""  # the demo: 6 epochs of 54 steps
    warning = short_epochs(demo, 109)  # the folder cut into 109 patches: 6 x 28 steps
    assert "a trial trains 168 steps (6 epochs of 109 images, batch 4)" in warning
    assert "epoch_samples = 136 or more" in warning  # 6 x 34 steps >= 200
    longer = dataclasses.replace(demo, train=dataclasses.replace(demo.train, epoch_samples=136))
    assert short_epochs(longer, 109) == ""
