"""The figures' data, read back from the plotly objects built from the real store."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reports import analysis as an
from reports import figures as fg
from reports import figures_effects as fe


def names(store, keys):
    return [store.trials[k].name for k in keys]


def traces(fig, name, xaxis=None):
    return [t for t in fig.data if t.name == name and (xaxis is None or t.xaxis == xaxis)]


def test_runs_table_is_sorted_by_val_mse_with_missing_last(store, data):
    table = fg.runs_table(data.trials)
    order = ["R4", "F2", "F5", "R2", "R3", "F1", "R1", "F3", "R6", "F6", "R5", "F4", "R7"]
    assert list(table["run_id"]) == [store.runs[k] for k in order]
    assert {"name", "runtime_s", "channels", "eta_min", "lr", "blocks", "train/mse", "val/mse", "val/psnr",
            "val/ssim", "status", "epochs_run"} <= set(table.columns)  # fmt: skip


def test_pareto_front_membership_is_exact(store, data):
    fig = fg.pareto(data.trials)
    by_time = traces(fig, "Pareto front", "x")[0]
    by_params = traces(fig, "Pareto front", "x2")[0]
    assert list(by_time.text) == names(store, ["R1", "R2", "R4"])
    assert list(by_params.text) == names(store, ["R1", "F1", "R2", "F5", "F2", "R4"])
    assert list(by_time.x) == pytest.approx([1.0, 1.5, 200 / 60])  # minutes
    assert fig.layout.meta["fronts"]["parameters"] == list(by_params.text)


def test_pruning_validity_spearman_matches_scipy_and_pandas(store, data):
    fig = fg.pruning_validity(data.trials, data.history, data.studies)
    for study, keys in {"residual": ["R1", "R2", "R3", "R4"], "refiner": ["F1", "F2", "F5"]}.items():
        rung = [store.trials[k].rung for k in keys]
        final = [store.trials[k].best for k in keys]
        expected = stats.spearmanr(rung, final).statistic
        assert fig.layout.meta["spearman"][study] == pytest.approx(expected, abs=1e-12)
        frame = pd.DataFrame({"rung": rung, "final": final}).corr(method="spearman")
        assert fig.layout.meta["spearman"][study] == pytest.approx(frame.loc["rung", "final"], abs=1e-12)
    assert fig.layout.meta["spearman"] == pytest.approx({"residual": 0.8, "refiner": 0.5})
    caption = fig.layout.meta["caption"]
    assert ("the rung ranking predicted the final one well (Spearman ρ = 0.800 over 4 trials at epoch 2)"
            in caption)
    assert "Spearman ρ = 0.500" in caption and "the rung ranking mostly held, with late bloomers" in caption


def test_pruning_validity_without_rungs_says_why(data):
    studies = data.studies.assign(grace_period=np.nan)
    with pytest.raises(fg.FigureUnavailable, match="no pruner.grace_period"):
        fg.pruning_validity(data.trials, data.history, studies)


def test_scaling_fit_matches_a_log_log_least_squares_and_says_what_doubling_width_buys(store, data):
    fig = fg.scaling_fit(data.trials)
    keys = ["R1", "R2", "R3", "R4"]  # best per size; R6 (same size as R4) was pruned
    x = [store.trials[k].n_params for k in keys]
    y = [store.trials[k].best for k in keys]
    slope = np.polyfit(np.log10(x), np.log10(y), 1)[0]
    assert fig.layout.meta["fits"]["residual"]["slope"] == pytest.approx(slope)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert "Doubling width (≈4x parameters)" in fig.layout.meta["caption"]
    assert f"{4**slope:.3f}" in fig.layout.meta["caption"]


def test_arch_comparison_pairs_equal_sizes(store, data):
    fig = fe.arch_comparison(data.trials)
    assert fig.layout.meta["sizes"] == ["b4 c16", "b4 c32"]
    residual_mse = [t for t in fig.data if t.name == "residual" and t.xaxis == "x"][0]
    assert list(residual_mse.y) == pytest.approx([0.009, 0.007])
    assert "residual has the higher PSNR at 2 of 2" in fig.layout.meta["caption"]


def test_arch_comparison_never_lets_a_rung_value_stand_in_for_the_full_budget(data):
    """No refiner finished: the figure is not drawn (pruned trials' rung values never stand in)."""
    t = data.trials
    t = t[~((t["arch"] == "refiner") & t["status"].isin(["completed", "early_stopped"]))]
    with pytest.raises(fg.FigureUnavailable, match="finished by every architecture.*never stand in"):
        fe.arch_comparison(t, data.studies)


def psnr_of(mse):
    return 10 * np.log10(1 / mse) + 0.5  # as the store logs it (conftest.psnr_of)


def test_arch_comparison_draws_the_gain_over_each_studys_bicubic_with_the_value_on_each_bar(data):
    fig = fe.arch_comparison(data.trials, data.studies)
    assert fig.layout.meta["baseline"] == "bicubic" and fig.layout.meta["budget_epoch"] is None
    residual = [t for t in fig.data if t.name == "residual" and t.xaxis == "x2"][0]
    refiner = [t for t in fig.data if t.name == "refiner" and t.xaxis == "x2"][0]
    assert list(residual.y) == pytest.approx(psnr_of(np.array([0.009, 0.007])) - 20.5)  # R2, R4
    assert list(refiner.y) == pytest.approx(psnr_of(np.array([0.0095, 0.008])) - 20.0)  # F1, F2
    assert list(residual.text) == [f"{v:+.2f}" for v in residual.y] and residual.textposition == "outside"
    ssim = [t for t in fig.data if t.name == "residual" and t.xaxis == "x3"][0]
    assert list(ssim.y) == pytest.approx([1 - 20 * 0.009 - 0.7, 1 - 20 * 0.007 - 0.7])
    assert fig.layout.yaxis2.title.text == "PSNR gain over bicubic (dB)"
    # the refiner study's bicubic is 0.5 dB lower than the residual's: by gain, it wins at b4 c16
    assert ("refiner has the higher PSNR gain over bicubic at 1 of 2; on average refiner − residual = +0.09 dB"
            in fig.layout.meta["caption"])


def test_without_a_bicubic_baseline_the_axes_span_the_measured_values_not_from_zero(data):
    studies = data.studies.assign(**{"bicubic/val_psnr": np.nan})
    for fig in (fe.arch_comparison(data.trials, studies), fe.depth_effect(data.trials, studies=studies)):
        assert fig.layout.meta["baseline"] is None
        psnr = [t for t in fig.data if t.xaxis == "x2"]
        values = np.concatenate([np.asarray(t.y, dtype=float) for t in psnr])
        low, high = fig.layout.yaxis2.range
        assert 0 < low < values.min() and high > values.max()  # not from 0: the spread fills the axis
        assert (high - low) < 3 * (values.max() - values.min())
        assert "axis spans the measured values" in fig.layout.yaxis2.title.text
        assert all(list(t.text) == [f"{v:.2f}" for v in t.y] for t in psnr)


def test_arch_comparison_with_one_arch_says_why(data):
    one = data.trials[data.trials["arch"] == "residual"]
    with pytest.raises(fg.FigureUnavailable, match=r"only one architecture \(residual\)"):
        fe.arch_comparison(one)


def test_depth_and_width_effects_default_to_the_most_coverage(data):
    depth = fe.depth_effect(data.trials)
    assert depth.layout.meta["channels"] == 16
    residual = [t for t in depth.data if t.name == "residual" and t.xaxis == "x"][0]
    assert list(residual.x) == [2, 4, 8] and list(residual.y) == pytest.approx([0.01, 0.009, 0.0092])
    width = fe.width_effect(data.trials)
    assert width.layout.meta["blocks"] == 4
    assert fe.width_effect(data.trials, blocks=2).layout.meta["blocks"] == 2
    with pytest.raises(fg.FigureUnavailable, match="channels = 64"):
        fe.depth_effect(data.trials, channels=64)


def test_width_effect_draws_finished_trials_only_even_when_pruned_ones_cover_more_widths(data):
    fig = fe.width_effect(data.trials, studies=data.studies)  # finished only: channels 16 and 32 at 4 blocks
    assert fig.layout.meta["budget_epoch"] is None
    assert all(sorted(set(trace.x)) == [16, 32] for trace in fig.data)  # R5 (c8, pruned at the rung) is not drawn
    assert "finished trials only" in fig.layout.meta["caption"]


def test_best_progress_shows_the_best_trial_per_epoch(store, data):
    fig = fg.best_progress(data.trials, data.history, data.objective)
    assert fig.layout.meta["run_id"] == store.runs["R4"]
    assert {t.name for t in fig.data} == {"train/mse", "val/mse", "val/psnr", "val/ssim"}
    assert list(traces(fig, "val/mse")[0].x) == [1, 2, 3, 4, 5, 6]


def test_all_curves_mark_pruned_trials(store, data):
    fig = fg.all_curves(data.trials, data.history, data.studies)
    pruned = [t for t in fig.data if t.name == "pruned"]
    assert {t.customdata[0] for t in pruned} == {store.runs[k] for k in ("R5", "R6", "F3")}
    assert all(t.line.dash == "dash" and t.marker.symbol[-1] == "x" for t in pruned)
    assert len(fig.data) == 12  # every trial with a val/mse history (R7 has none)
    assert "3 of 13 trials were pruned" in fig.layout.meta["caption"]


def test_parallel_coordinates_span_blocks_channels_lr_and_val_mse(data):
    fig = fg.parallel_coordinates(data.trials)
    labels = [d.label for d in fig.data[0].dimensions]
    assert labels == ["arch", "blocks (count)", "channels (width)", "lr (log scale)", "val MSE (per pixel)"]
    assert len(fig.data[0].dimensions[-1].values) == 7  # finished trials


def test_figures_without_finished_trials_say_why(data):
    pruned = data.trials[data.trials["status"] == "pruned"]
    for make in (fg.pareto, fg.scaling_fit, fg.parallel_coordinates, fe.depth_effect):
        with pytest.raises(fg.FigureUnavailable, match="no trial finished"):
            make(pruned)
    assert an.best_trial(pruned) is None


def test_every_status_of_the_contract_has_its_own_colour():
    from reports.figure_base import STATUS_COLORS
    from sr_core.contract import STATUSES
    assert set(STATUS_COLORS) == set(STATUSES)
    assert len(set(STATUS_COLORS.values())) == len(STATUS_COLORS)
