"""build_report writes one self-contained, offline HTML file, atomically."""

import base64
import re
from html.parser import HTMLParser

import pytest
from plotly.offline import get_plotlyjs

from reports import ReportError, RunData, build_report, render_page

URL_ATTRS = {"src", "href", "data", "action", "poster", "srcset", "background", "formaction"}


class _Refs(HTMLParser):
    """Every URL the page's own markup would make a browser load (scripts are raw text here)."""

    def __init__(self):
        super().__init__()
        self.refs, self._in_style = [], False

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        self.refs += [v for k, v in attrs if k in URL_ATTRS and v]
        self.refs += re.findall(r"url\(\s*['\"]?([^'\")]+)", dict(attrs).get("style") or "")

    def handle_data(self, data):
        if self._in_style:
            self.refs += re.findall(r"url\(\s*['\"]?([^'\")]+)|@import\s+['\"]([^'\"]+)", data)


def external_references(html: str) -> list[str]:
    parser = _Refs()
    parser.feed(html)
    refs = [r if isinstance(r, str) else "".join(r) for r in parser.refs]
    return [r for r in refs if not r.startswith(("data:", "#"))]


def test_plotly_js_is_inlined_exactly_once(two_study_report):
    _, html = two_study_report
    assert html.count(get_plotlyjs()[:200]) == 1
    assert html.count('class="plotly-graph-div"') == 10  # figures 2-11


def test_no_markup_loads_anything_from_outside_the_file(two_study_report, residual_report):
    for _, html in (two_study_report, residual_report):
        assert external_references(html) == []
        assert not re.search(r"<(script|link|img|iframe)[^>]*(src|href)=[\"']?(https?:)?//", html, re.I)


def test_the_checker_would_catch_an_external_script():
    assert external_references('<script src="https://cdn.plot.ly/plotly.min.js"></script>') != []
    assert external_references("<style>@import 'https://fonts.googleapis.com/x';</style>") != []


def test_samples_png_is_embedded_as_a_data_uri(store, two_study_report):
    _, html = two_study_report
    assert "data:image/png;base64," + base64.b64encode(store.samples_png).decode() in html


def test_header_states_best_config_gain_over_bicubic_status_and_cost(two_study_report):
    _, html = two_study_report
    assert "<b>Best: residual_b4_c32_lr0.001</b>" in html
    assert "val MSE <b>0.00700</b>" in html
    assert "+1.55 dB over bicubic at 20.50 dB" in html  # 22.05 - 20.50
    assert "<td>all</td><td>13</td><td>6</td><td>1</td><td>3</td><td>1</td><td>1</td><td>1</td>" in html
    assert "<td>0.5</td><td>0.4</td>" in html and "1.25x" in html  # estimate against actual


def test_header_shows_bicubic_psnr_on_train_and_on_val(two_study_report):
    _, html = two_study_report
    assert ("residual: 700 train / 140 val patches; bicubic PSNR 20.75 dB on train, 20.50 dB on val, "
            "gap +0.25 dB") in html
    assert "Not final" not in html  # both studies completed
    assert "by the tool that made their LR: residual, best model: +0.91 dB (sr-search LR), +0.88 dB (pil LR), +0.12 dB (opencv LR)" in html


def test_a_study_that_did_not_complete_is_marked_not_final(data):
    studies = data.studies.copy()
    studies.loc[studies["study"] == "refiner", "status"] = "interrupted"
    html = render_page(RunData(data.trials, data.history, studies, "sqlite://"), samples_png=None)
    assert "Not final: refiner (interrupted). 1 trial(s) have not ended" in html


def test_a_password_in_the_tracking_uri_is_not_shown(data):
    html = render_page(RunData(data.trials, data.history, data.studies, "http://me:s3cret@host:5000"), None)
    assert "s3cret" not in html and "http://me:***@host:5000" in html


def test_runs_table_rows_follow_val_mse_and_every_section_is_titled(two_study_report):
    _, html = two_study_report
    table = html[html.index('id="runs-table"') : html.index("</table>", html.index('id="runs-table"'))]
    order = re.findall(r'<tr class="[^"]*" data-run-id="[^"]*"><td data-sort="([^"]*)"', table)
    assert order[:3] == ["residual_b4_c32_lr0.001", "refiner_b4_c32_lr0.001", "refiner_b2_c32_lr0.001"]
    assert order[-1] == "residual_b8_c64_lr0.001"  # no val/mse: last
    for n in range(1, 14):
        assert f'<section id="section-{n}"><h2>{n}. ' in html
    assert "Not drawn" not in html


def test_one_arch_report_explains_the_missing_comparison(residual_report):
    _, html = residual_report
    section = html[html.index('id="section-2"') : html.index('id="section-3"')]
    assert "Not drawn: only one architecture (residual) in this report" in section
    assert html.count('class="plotly-graph-div"') == 9


def test_a_page_without_finished_trials_degrades_instead_of_failing(data):
    pruned = data.trials[data.trials["status"] == "pruned"]
    thin = RunData(pruned, data.history[data.history["run_id"].isin(pruned["run_id"])], data.studies, "sqlite://")
    html = render_page(thin, samples_png=None)
    assert html.count("Not drawn: no trial finished") >= 5
    assert "No trial finished (completed or early_stopped) yet" in html
    # only the all-curves figure and the anytime one (the best any epoch reached, finished or not)
    assert html.count('class="plotly-graph-div"') == 2


def test_a_failed_build_leaves_the_previous_report_untouched(store, tmp_path):
    out = tmp_path / "reports" / "r.html"
    out.parent.mkdir()
    out.write_text("previous")
    with pytest.raises(ReportError, match="'nope'"):
        build_report(store.uri, ["nope"], out)
    assert out.read_text() == "previous"
    assert build_report(store.uri, ["refiner"], out) == out.resolve()
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["r.html"]  # no temp file left behind
