"""load_runs reads the real sqlite store the way docs/tracking-schema.md describes it."""

import math
from pathlib import Path

import pytest

from reports import ReportError, load_runs


def test_one_row_per_trial_of_the_newest_parent_of_each_study(store, data):
    expected = {store.runs[k] for k in store.trials if k != "R0"}  # R0 hangs under the older parent
    assert set(data.trials["run_id"]) == expected
    assert len(data.trials) == 13
    assert list(data.studies["study"]) == ["residual", "refiner"]
    assert data.studies.set_index("study").loc["residual", "run_id"] == store.parents["residual"]


def test_trial_rows_carry_params_metrics_status_runtime_epochs_and_cost(store, data):
    row = data.trials.set_index("run_id").loc[store.runs["R3"]]
    assert (row["name"], row["study"], row["arch"], row["status"]) == (
        "residual_b8_c16_lr0.001", "residual", "residual", "early_stopped",
    )  # fmt: skip
    assert (row["blocks"], row["channels"], row["lr"], row["eta_min"]) == (8, 16, 1e-3, 1e-7)
    assert row["val/mse"] == pytest.approx(0.0092) and row["best_epoch"] == 4
    assert row["epochs_run"] == 5 and row["max_epochs"] == 6
    assert row["runtime_s"] == 150 and row["n_params"] == 40_000
    assert row["flops_per_image"] == 40_000 * 2 * 128 * 128


def test_a_trial_that_logged_nothing_is_still_a_row(store, data):
    row = data.trials.set_index("run_id").loc[store.runs["R7"]]
    assert row["status"] == "oom" and math.isnan(row["val/mse"])


def test_a_running_trial_without_summary_metrics_takes_its_best_epoch_from_history(store, data):
    row = data.trials.set_index("run_id").loc[store.runs["F6"]]
    assert row["status"] == "running" and row["epochs_run"] == 3
    assert row["val/mse"] == pytest.approx(0.018) and row["best_epoch"] == 3
    assert math.isnan(row["runtime_s"])


def test_history_is_long_with_one_row_per_trial_and_epoch(store, data):
    h = data.history
    assert set(h.columns) >= {"run_id", "name", "study", "arch", "status", "epoch", "train/mse", "val/mse",
                              "val/psnr", "val/ssim", "lr", "epoch_seconds", "images_per_s"}  # fmt: skip
    per_run = h.groupby("run_id")["epoch"].apply(list)
    assert per_run[store.runs["R5"]] == [1, 2]  # pruned at the first rung
    assert per_run[store.runs["R3"]] == [1, 2, 3, 4, 5]
    assert store.runs["R7"] not in per_run.index
    at_rung = h[(h["run_id"] == store.runs["R1"]) & (h["epoch"] == 2)]["val/mse"].item()
    assert at_rung == pytest.approx(store.trials["R1"].rung)


def test_study_rows_hold_pruner_estimate_bicubic_and_actual(data):
    s = data.studies.set_index("study")
    assert s.loc["residual", "grace_period"] == 2 and s.loc["residual", "reduction_factor"] == 2
    assert s.loc["residual", "bicubic/val_psnr"] == 20.5
    assert s.loc["residual", "estimate/device_hours"] == 0.5 and s.loc["residual", "actual/device_hours"] == 0.4
    assert math.isnan(s.loc["refiner", "actual/device_hours"])  # not logged: missing, not an error
    assert s.loc["refiner", "params"]["pruner.kind"] == "asha"


@pytest.mark.parametrize(
    "studies, named",
    [(["nope"], "'nope'"), (["residual", "nope"], "'nope'"), (["empty"], "'empty'"), ([], "no study")],
)
def test_unknown_or_empty_study_is_a_report_error_naming_it(store, studies, named):
    with pytest.raises(ReportError, match=named) as info:
        load_runs(store.uri, studies)
    assert isinstance(info.value, ValueError)


def test_an_unknown_study_error_says_which_studies_do_exist(store):
    with pytest.raises(ReportError, match=r"'nope' not found .*studies there: .*refiner"):
        load_runs(store.uri, ["nope"])


def test_a_single_study_name_may_be_passed_as_a_string(store):
    assert set(load_runs(store.uri, "refiner").trials["study"]) == {"refiner"}


def test_a_missing_sqlite_store_is_an_error_and_is_not_created(tmp_path):
    db = tmp_path / "nothing.db"
    with pytest.raises(ReportError, match="'demo'"):
        load_runs(f"sqlite:///{db}", ["demo"])
    assert not Path(db).exists()
