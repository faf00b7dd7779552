"""The report follows the study's objective ([search] metric and mode) everywhere `run` does: its best
trial, the runs table's marked row, the best-config paragraph and the best trial's training curves."""
import dataclasses

import pytest

from reports import analysis as an
from reports import figures as fg
from reports import summary as sm
from reports.html import render_page, runs_table_html
from sr_core.contract import OBJECTIVE, OBJECTIVE_MODE, objective_of


@pytest.fixture
def psnr_y_study(data, store):
    """The residual study as if it had optimised val/psnr_y (max): R2, not the val/mse best R4, wins."""
    residual = data.trials[data.trials["study"] == "residual"].copy()
    residual["val/psnr_y"] = [30.0 if n == "residual_b4_c16_lr0.001" else 25.0 for n in residual["name"]]
    studies = data.studies[data.studies["study"] == "residual"].copy()
    studies["params"] = [{**p, "search.metric": "val/psnr_y", "search.mode": "max"} for p in studies["params"]]
    return dataclasses.replace(data, trials=residual, studies=studies)


def test_the_objective_is_read_from_the_study_run_and_defaults_to_val_mse():
    assert objective_of({"search.metric": "val/psnr_y", "search.mode": "max"}) == ("val/psnr_y", "max")
    assert objective_of({}) == (OBJECTIVE, OBJECTIVE_MODE) == ("val/mse", "min")


def test_a_val_psnr_y_study_gets_its_own_best_trial_everywhere(psnr_y_study, data):
    default_best = an.best_trial(data.trials[data.trials["study"] == "residual"])
    best = an.best_trial(psnr_y_study.trials, psnr_y_study.objective)
    assert psnr_y_study.objective == ("val/psnr_y", "max")
    assert best["name"] != default_best["name"] and best["val/psnr_y"] == 30.0
    table = runs_table_html(psnr_y_study.trials, psnr_y_study.objective)
    assert table.count('best"') == 1 and f'class="completed best" data-run-id="{best["run_id"]}"' in table
    assert f"<b>Best: {best['name']}</b>" in sm.best_config(psnr_y_study)
    curves = fg.best_progress(psnr_y_study.trials, psnr_y_study.history, psnr_y_study.objective)
    assert best["name"] in curves.layout.title.text
    assert f"<b>Best: {best['name']}</b>" in render_page(psnr_y_study, None)


def test_studies_that_disagree_on_the_objective_are_compared_on_the_default(psnr_y_study, data):
    both = dataclasses.replace(data, studies=data.studies.assign(
        params=[{**p, "search.metric": "val/psnr_y", "search.mode": "max"} if i == 0 else p
                for i, p in enumerate(data.studies["params"])]))
    assert both.objective == (OBJECTIVE, OBJECTIVE_MODE)
