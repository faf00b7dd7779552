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
    searched = float(re.search(r"vs bicubic\s*: ([+-][\d.]+) dB", done.stdout).group(1))
    final = float(re.search(r"final gain\s*: ([+-][\d.]+) dB over bicubic on val", done.stdout).group(1))
    # measured on the demo's val set: the search's best +0.55 dB, the final model (60 epochs) +1.25
    assert searched > 0.3 and final > searched + 0.4, done.stdout[-2000:]
    assert re.search(r"^final        : \S+-final  val/mse", done.stdout, re.M)
    # the pruning audit: two pruned trials resumed to the end, judged against the search's best
    assert re.search(r"^audit        : 2 pruned trial\(s\) resumed to the end; best \S+-audit \(rank \d+ of \d+ pruned",
                     done.stdout, re.M), done.stdout[-3000:]
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
    assert "Pruning audit: 2 pruned trial(s) resumed to the full budget." in html and "Anytime:" in html
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
