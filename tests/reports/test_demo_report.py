"""The README's main job, for real: `sr-search run --study demo` on the embedded photos (real Ray,
Optuna and MLflow, the search then the [final] step, about 5-6 minutes on 2 cores), then its report in headless Chromium: every figure
drawn (no "Not drawn" anywhere), no JS error, no request leaving the file."""
import re

import pytest
from test_reports_render import open_in_chromium, render_status

pytestmark = pytest.mark.slow  # the README's demo end to end, and headless Chromium


@pytest.fixture(scope="module")
def demo(demo_run):  # one run of the demo per session (tests/conftest.py), shared with every reader
    return demo_run


def test_the_demo_runs_and_beats_bicubic(demo):
    done, _ = demo
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Tune's experiment-state upload never races its own writes (search.tune.state_upload)
    assert "Last sync command failed" not in done.stdout + done.stderr
    # every comparison `run` states carries its 95% interval over the val images
    searched = float(re.search(r"vs bicubic\s*: ([+-][\d.]+) dB \[[+-][\d.]+, [+-][\d.]+\]", done.stdout).group(1))
    final = float(re.search(r"final gain\s*: ([+-][\d.]+) dB \[[+-][\d.]+, [+-][\d.]+\] over bicubic on val; "
                            r"[+-][\d.]+ dB \[[+-][\d.]+, [+-][\d.]+\] over the search's best", done.stdout).group(1))
    assert re.search(r"^runner-up    : the best is (better than|tied within noise with) \S+ \([+-][\d.]+ dB \[",
                     done.stdout, re.M), done.stdout[-3000:]
    # measured on the demo's val set: the search's best +0.55 dB, the final model (60 epochs) +1.25
    assert searched > 0.3 and final > searched + 0.4, done.stdout[-2000:]
    assert re.search(r"^final        : \S+-final  val/mse", done.stdout, re.M)
    # the pruning audit: two pruned trials resumed, one verdict naming the schedule that ran, judged
    # against the search's best with the val set's noise
    assert re.search(r"^audit        : demo, synchronous halving \(rungs at epochs 1, 2, 4; .*\): (a pruning miss|no "
                     r"pruning miss): the best of 2 audited trial\(s\), \S+-audit \(cut at the epoch-\d rung, ranked "
                     r"\d+ of \d+ pruned; resumed from epoch \d", done.stdout, re.M), done.stdout[-3000:]
    # the final step trained the best configuration known when it started, and says which
    assert re.search(r"^final        : \S+ \((the search's best|audited trial)", done.stdout, re.M)
    assert re.search(r"^device time  : [\d.]+ trial-slot-hours spent, [\d.]+ estimated", done.stdout, re.M)
    assert re.search(r"outside\s*: search's best vs bicubic on photos outside scikit-image", done.stdout)
    # The bar for the model users take away, on photos from outside scikit-image (measured
    # +1.09 / +1.09 / +0.43 dB): >= 0.8 dB for sr-search's and Pillow's LR, >= 0.3 for OpenCV-style.
    outside = re.search(r"outside\s*: final model vs bicubic on photos outside scikit-image, by LR kernel: "
                        r"sr-search ([+-][\d.]+) dB, pil ([+-][\d.]+) dB, opencv ([+-][\d.]+) dB", done.stdout)
    gains = [float(g) for g in outside.groups()]
    assert gains[0] >= 0.8 and gains[1] >= 0.8 and gains[2] >= 0.3, outside.group(0)


def test_the_demo_report_draws_every_figure_in_chromium(demo, tmp_path):
    done, workdir = demo
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    page = workdir / "reports" / "demo.html"
    html = page.read_text(encoding="utf-8")
    assert "Not drawn" not in html and "Not final" not in html
    assert "the best of 2 audited trial(s)" in html and "Anytime:" in html
    # the words name the schedule that ran (not "ASHA rungs": base64 images may hold any 4 letters)
    assert "synchronous halving rungs at epoch(s) 1, 2, 4." in html and "ASHA rungs" not in html
    assert re.search(r"bicubic PSNR [\d.]+ dB on train, [\d.]+ dB on val", html)
    dom, requested = open_in_chromium(page, tmp_path)
    status, errors = render_status(dom)
    assert status["errors"] == 0, errors
    assert status["figures"] == status["rendered"] == html.count('class="plotly-graph-div"') == 10
    # the best trial's sample grid, and the comparison crops: HR, bicubic and each trial's, with error maps
    crops = html.count("<tr data-crop=")
    assert crops >= 5 and status["images"] == status["loaded"] > 1 + 3 * crops
    assert requested == []
    for n in range(2, 12):
        section = html[html.index(f'<section id="section-{n}">'):]
        assert "plotly-graph-div" in section[:section.index("</section>")]


def test_the_demo_report_answers_its_questions_at_the_full_budget_with_error_bars(demo):
    """Refiner vs residual, depth and width: every point is a run that reached epoch 6 (the full budget),
    drawn with its 95% interval; each step says its direction or that it is tied within noise."""
    from reports.html import effect_makers
    from reports.load import load_runs
    done, workdir = demo
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = load_runs(f"sqlite:///{workdir / 'mlflow.db'}", ["demo"])
    makers = effect_makers(data)
    assert [heading for heading, _ in makers] == ["Refiner vs residual at each depth (blocks), channels 16, at the full budget",
                                                  "Depth (blocks), channels 32, at the full budget",
                                                  "Width (channels), blocks 4, at the full budget"]
    runs = {**dict(zip(data.trials["name"], data.trials["epochs_run"])),
            **dict(zip(data.audits["name"], data.audits["epochs_run"]))}
    for heading, make in makers:
        fig = make()
        meta = fig.layout.meta
        assert meta["budget_epoch"] == 6 and "(full budget: epoch 6" in fig.layout.title.text, heading
        assert meta["left_out"] == [], heading  # the schedule carried every point of the slice to epoch 6
        assert all(int(runs[name]) == 6 for name in meta["points"]), (heading, meta["points"])
        for trace in fig.data:  # error bars: the 95% paired bootstrap interval of each point's gain over bicubic
            assert trace.error_y.visible and all(h > 0 for h in trace.error_y.array), heading
        assert meta["steps"] and all(s["direction"] in ("+", "-", "tied") and "gain" in s for s in meta["steps"])
        assert "95% paired bootstrap (BCa) over the 56 val images" in meta["caption"]
    arch = makers[0][1]().layout.meta
    assert [s["along"] for s in arch["steps"]] == [1, 2, 4]  # residual - refiner at each depth, 16 channels
