"""The report's benchmark-folder section, read back from a real MLflow store that search's own writer
(search.apply.evaluate.log_rows -> search.tracking.log_evaluation) filled with known figures."""
import re

import pytest
from _study_store import StoredTrial, write_store
from mlflow.tracking import MlflowClient
from plotly.offline import get_plotlyjs

from reports import build_report, load_runs
from reports.evaluation import evaluation_figure, load_evaluations
from search.apply.evaluate import EvalRow, ImageScore, log_rows
from sr_core.contract import BICUBIC, SELF_ENSEMBLE
from sr_core.models import flops_per_image

STUDY = "evalrep"
A, B = "residual_b0_c4_lr0.001_eta0", "residual_b1_c4_lr0.001_eta0"


def _scores(*psnr_y):
    """Images i0, i1, ...: PSNR-Y as given, SSIM-Y psnr_y / 100, RGB PSNR 2 dB lower."""
    return tuple(ImageScore(f"i{k}", 100 + k, 120, p, p / 100, p - 2) for k, p in enumerate(psnr_y))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("evalrep") / "w"
    ids = write_store(workdir, STUDY, [StoredTrial(0, 1e-3, "completed", 0.010),
                                       StoredTrial(1, 1e-3, "completed", 0.008)])
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    log_rows(client, ids["study"], [EvalRow("Set5", BICUBIC, BICUBIC, _scores(28, 30)),
                                    EvalRow("Urban", BICUBIC, BICUBIC, _scores(23))], "matlab")
    log_rows(client, ids[A], [EvalRow("Set5", None, A, _scores(30, 32), 1000, 1e6),
                              EvalRow("Set5", SELF_ENSEMBLE, A, _scores(30.5, 32.5), 1000, 8e6)], "matlab")
    # B: first with its ensemble, then again without it and with Pillow's LR: its + figures are stale.
    log_rows(client, ids[B], [EvalRow("Set5", None, B, _scores(35, 35), 2000, 2e6),
                              EvalRow("Set5", SELF_ENSEMBLE, B, _scores(36, 36), 2000, 16e6)], "matlab")
    log_rows(client, ids[B], [EvalRow("Set5", None, B, _scores(33, 33), 2000, 2e6),
                              EvalRow("Urban", None, B, _scores(25), 2000, 2e6)], "pil")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    return uri, load_evaluations(uri, load_runs(uri, [STUDY])), workdir


def test_each_folder_lists_bicubic_first_then_trials_by_psnr_y_each_with_its_plus_row(evaluated):
    _, ev, _ = evaluated
    table = ev.folders[["folder", "label", "lr_kernel", "images", "psnr_y", "psnr", "flops_per_image"]]
    a_flops, b_flops = flops_per_image("residual", 0, 4), flops_per_image("residual", 1, 4)
    assert table.fillna(-1).to_dict("list") == {
        "folder": ["Set5", "Set5", "Set5", "Set5", "Urban", "Urban"],
        "label": ["bicubic", B, A, A + "+", "bicubic", B],
        "lr_kernel": ["matlab", "pil", "matlab", "matlab", "matlab", "pil"],
        "images": [2, 2, 2, 2, 1, 1],
        "psnr_y": [29.0, 33.0, 31.0, 31.5, 23.0, 25.0],  # means over the images
        "psnr": [27.0, 31.0, 29.0, 29.5, 21.0, 23.0],
        # the trial's own params (what MLflow holds), x8 for +; none for bicubic
        "flops_per_image": [-1, b_flops, a_flops, 8 * a_flops, -1, b_flops],
    }
    assert list(ev.folders["ssim_y"]) == pytest.approx([0.29, 0.33, 0.31, 0.315, 0.23, 0.25], abs=1e-12)


def test_an_ensemble_the_latest_evaluation_did_not_remake_is_left_out(evaluated):
    _, ev, _ = evaluated
    assert B + "+" not in set(ev.folders["label"])  # its 36 dB were of another LR kernel


def test_every_image_comes_back_from_the_runs_artifacts(evaluated):
    _, ev, _ = evaluated
    a_plus = ev.images[ev.images["label"] == A + "+"]
    assert a_plus[["image", "height", "width", "psnr_y"]].to_dict("list") == {
        "image": ["i0", "i1"], "height": [100, 101], "width": [120, 120], "psnr_y": [30.5, 32.5]}
    assert len(ev.images) == 2 + 1 + 2 + 2 + 2 + 1  # bicubic, B's latest, A and A+


def test_the_figure_draws_psnr_y_and_ssim_y_per_folder_for_each_row(evaluated):
    _, ev, _ = evaluated
    fig = evaluation_figure(ev.folders)
    psnr = {t.name: dict(zip(t.x, t.y)) for t in fig.data if t.xaxis == "x"}
    assert psnr == {"bicubic": {"Set5": 29.0, "Urban": 23.0}, B: {"Set5": 33.0, "Urban": 25.0},
                    A: {"Set5": 31.0}, A + "+": {"Set5": 31.5}}
    ssim = {t.name: list(t.y) for t in fig.data if t.xaxis == "x2"}
    assert ssim[A + "+"] == [0.315]
    assert [t.marker.symbol for t in fig.data if t.name == A + "+"] == ["diamond", "diamond"]


def test_the_report_gets_a_section_with_the_table_and_the_figure(evaluated, tmp_path):
    uri, _, _ = evaluated
    html = build_report(uri, [STUDY], tmp_path / "r.html").read_text(encoding="utf-8")
    section = html[html.index("Benchmark folders, scored as papers score them"):]
    assert html.count(get_plotlyjs()[:200]) == 1 and 'id="figure-evaluation"' in section
    rows = re.findall(r"<tr><td[^>]*>(\w+)</td><td[^>]*>([\w.+]+)</td><td[^>]*>(\w+)</td><td>\d+</td>"
                      r"<td>([\d.]+)</td>", section)
    assert rows[:4] == [("Set5", "bicubic", "matlab", "29.00"), ("Set5", B, "pil", "33.00"),
                        ("Set5", A, "matlab", "31.00"), ("Set5", A + "+", "matlab", "31.50")]
    assert "Every image (10 rows)" in section


def test_a_study_never_evaluated_has_no_such_section_and_its_report_is_unchanged(residual_report):
    _, html = residual_report
    assert "Benchmark folders" not in html and "figure-evaluation" not in html
    last = re.findall(r'<section id="section-(\d+)"><h2>\d+\. ([^<]+)</h2>', html)[-1]
    assert last[1].startswith("The same crops across trials")  # ends with the crops, as before


@pytest.mark.slow  # headless Chromium
def test_the_evaluated_report_draws_every_figure_in_chromium(evaluated, tmp_path):
    from test_reports_render import open_in_chromium, render_status

    uri, _, _ = evaluated
    page = build_report(uri, [STUDY], tmp_path / "r.html")
    html = page.read_text(encoding="utf-8")
    dom, requested = open_in_chromium(page, tmp_path)
    status, errors = render_status(dom)
    assert status["errors"] == 0, errors
    assert status["figures"] == status["rendered"] == html.count('class="plotly-graph-div"')
    assert 'id="figure-evaluation"' in html and requested == []
