"""The report opens in real headless Chromium: every figure draws, every image loads, no JS error, no
network request; the runs table sorts and a comparison crop enlarges on click."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # headless Chromium

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
    "--enable-unsafe-swiftshader",  # software WebGL for the parallel-coordinates figure
    "--host-resolver-rules=MAP * ~NOTFOUND",
]  # fmt: skip

# Clicks the runs table's headers after load and records the first/last names it then shows.
SORT_PROBE = """<script>
window.addEventListener('load', function () { setTimeout(function () {
  var th = Array.prototype.slice.call(document.querySelectorAll('#runs-table th'));
  var rows = function () { return document.querySelector('#runs-table tbody').rows; };
  var first = function () { return rows()[0].cells[0].textContent; };
  var last = function () { var r = rows(); return r[r.length - 1].cells[0].textContent; };
  var col = function (name) { return th.filter(function (h) { return h.textContent === name; })[0]; };
  col('val/mse').click(); var asc = first();
  col('val/mse').click(); var desc = first(), descLast = last();
  col('name').click(); var byName = first();
  document.body.setAttribute('data-sort-probe', [asc, desc, descLast, byName].join(','));
}, 100); });
</script>"""


# Clicks the first trial's prediction of the first crop and records what the enlarged view shows.
ZOOM_PROBE = """<script>
window.addEventListener('load', function () { setTimeout(function () {
  var cell = document.querySelector('#crops-table tbody tr').cells[3];
  cell.querySelector('img.crop').click();
  var big = Array.prototype.slice.call(document.querySelectorAll('#crop-zoom img'));
  document.body.setAttribute('data-zoom-probe', big.map(function (i) {
    return i.naturalWidth + 'x' + i.width + ':' + i.parentNode.textContent; }).join('|'));
}, 100); });
</script>"""


def open_in_chromium(page: Path, workdir: Path) -> tuple[str, list[str]]:
    """Load the page headless; return the DOM after load and the URLs the page itself requested."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium is required for the report rendering test and {CHROMIUM} is missing: "
                    "apt-get install -y chromium")  # fmt: skip
    netlog = workdir / "netlog.json"
    env = {**os.environ, "HOME": str(workdir), "XDG_CONFIG_HOME": str(workdir / "config"),
           "XDG_CACHE_HOME": str(workdir / "cache")}  # fmt: skip
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={workdir / 'profile'}", f"--log-net-log={netlog}",
           "--dump-dom", "--virtual-time-budget=10000", page.as_uri()]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = json.loads(netlog.read_text())
    kinds = {v: k for k, v in events["constants"]["logEventTypes"].items()}
    requested = [
        e["params"]["url"]
        for e in events["events"]
        if kinds.get(e["type"]) == "URL_REQUEST_START_JOB" and "url" in e.get("params", {})
        # Chromium's own background traffic has no origin; anything the page asks for has one.
        and e["params"].get("initiator") != "not an origin"
        and not e["params"]["url"].startswith(("file:", "data:", "blob:"))
    ]
    return proc.stdout, requested


def open_with_probe(html: str, probe: str, workdir: Path) -> tuple[str, dict[str, int], str, list[str]]:
    """The page with a probe script added, loaded headless: (DOM, render status, JS errors, requests)."""
    page = workdir / "probe.html"
    page.write_text(html.replace("</body>", probe + "</body>"), encoding="utf-8")
    dom, requested = open_in_chromium(page, workdir)
    return dom, *render_status(dom), requested


def render_status(dom: str) -> tuple[dict[str, int], str]:
    match = re.search(r'<div id="render-status" data-errors="([^"]*)">([^<]*)</div>', dom)
    assert match, "the render check never ran: " + dom[-2000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}, match.group(1)


def test_two_study_report_renders_every_figure_without_errors_or_requests(two_study_report, tmp_path):
    path, html = two_study_report
    dom, requested = open_in_chromium(path, tmp_path)
    status, errors = render_status(dom)
    # images: the samples grid, and 3 crops x (HR, bicubic and its error map, 5 trials and theirs)
    assert status == {"figures": 10, "rendered": 10, "images": 40, "loaded": 40, "errors": 0}, errors
    assert html.count('class="plotly-graph-div"') == status["figures"]
    assert requested == []


def test_one_arch_report_renders_and_its_table_sorts_on_click(residual_report, tmp_path):
    dom, status, errors, requested = open_with_probe(residual_report[1], SORT_PROBE, tmp_path)
    assert status == {"figures": 9, "rendered": 9, "images": 34, "loaded": 34, "errors": 0}, errors  # 4 trials
    assert requested == []
    probe = re.search(r'data-sort-probe="([^"]*)"', dom).group(1).split(",")
    assert probe == ["residual_b4_c32_lr0.001", "residual_b4_c8_lr0.001", "residual_b8_c64_lr0.001",
                     "residual_b2_c16_lr0.001"]  # fmt: skip


def test_a_comparison_crop_enlarges_beside_its_error_map_and_the_hr_on_click(two_study_report, tmp_path):
    dom, status, errors, requested = open_with_probe(two_study_report[1], ZOOM_PROBE, tmp_path)
    assert status["errors"] == 0, errors
    assert requested == []
    shown = re.search(r'data-zoom-probe="([^"]*)"', dom).group(1).split("|")
    assert len(shown) == 3  # the prediction, its error map, the HR
    sizes = [s.split(":", 1)[0].split("x") for s in shown]
    assert all(natural == "128" and int(width) >= 256 for natural, width in sizes)  # loaded, enlarged
    labels = [s.split(":", 1)[1] for s in shown]
    assert [label.rsplit(" (x", 1)[0] for label in labels] == [
        "residual_b4_c32_lr0.001 on edges", "error map of residual_b4_c32_lr0.001 on edges", "HR of edges"]
