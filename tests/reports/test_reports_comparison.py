"""The comparison section: which trials it shows, which crops come first, the one error-map scale,
read from the real store (conftest.py logged three crops for every trial with weights)."""
import base64
import io
import math
import re

import numpy as np
import pytest
from PIL import Image

from reports import RunData
from reports.comparison import ERROR_FULL_SCALE, disagreement, error_map, load_comparison, shown_trials
from reports.comparison_html import comparison_body
from reports.figure_base import FigureUnavailable



def test_shown_trials_are_the_top_three_the_best_per_arch_and_the_extremes_each_once(store, data):
    shown = shown_trials(data.trials, data.crop_scores)
    assert [t.run_id for t in shown] == [store.runs[k] for k in ("R4", "F2", "F5", "R2", "R3")]  # by val/mse
    assert [t.why for t in shown] == [("#1", "best residual", "widest (32 channels)"), ("#2", "best refiner"),
                                      ("#3", "shallowest (2 blocks)"), ("narrowest (16 channels)",),
                                      ("deepest (8 blocks)",)]


def test_a_trial_without_crops_or_that_did_not_finish_is_not_shown(store, data):
    without_best = data.crop_scores[data.crop_scores["run_id"] != store.runs["R4"]]
    shown = shown_trials(data.trials, without_best)
    assert store.runs["R4"] not in [t.run_id for t in shown] and shown[0].why[0] == "#1"
    pruned = {store.runs[k] for k in ("R5", "R6", "F3")}
    assert pruned <= set(data.crop_scores["run_id"])  # they logged crops, but are never shown
    assert pruned.isdisjoint(t.run_id for t in shown_trials(data.trials, data.crop_scores))


def test_one_arch_with_one_depth_has_no_depth_extremes(data):
    one = data.trials[(data.trials["arch"] == "residual") & (data.trials["blocks"] == 4)]
    why = [w for t in shown_trials(one, data.crop_scores) for w in t.why]
    assert not any(w.startswith(("shallowest", "deepest")) for w in why)
    assert "narrowest (16 channels)" in why and "widest (32 channels)" in why


def test_disagreement_is_the_spread_of_finite_psnrs():
    assert disagreement([24.0, 25.5, 23.0]) == pytest.approx(2.5)
    assert disagreement([24.0, math.nan, 26.0]) == pytest.approx(2.0)
    assert disagreement([24.0]) == 0.0


def test_crops_where_the_shown_trials_disagree_most_come_first(store, data):
    comparison = load_comparison(data)
    keys = {run_id: key for key, run_id in store.runs.items()}
    expected = {crop: max(store.crop_psnr[(keys[t.run_id], crop)] for t in comparison.trials)
                - min(store.crop_psnr[(keys[t.run_id], crop)] for t in comparison.trials) for crop in store.crops}
    assert [c.name for c in comparison.crops] == sorted(store.crops, key=lambda c: -expected[c])
    assert [c.name for c in comparison.crops] == ["edges", "texture", "calm"]  # logged calm, texture, edges
    assert [c.spread for c in comparison.crops] == pytest.approx([expected[c.name] for c in comparison.crops])


def test_the_error_map_scale_saturates_at_the_stated_gray_levels():
    hr = np.full((2, 2, 3), 20, dtype=np.uint8)
    sr = hr.copy()
    sr[0, 0] = 20 + ERROR_FULL_SCALE  # a full-scale error on every channel
    sr[0, 1] = 20 + ERROR_FULL_SCALE // 2
    sr[1, 0] = [20 + 3 * ERROR_FULL_SCALE, 20, 20]  # 3x full scale on one channel: mean 1x
    sr[1, 1] = 255
    assert error_map(sr, hr).tolist() == [[255, 128], [255, 255]]
    assert error_map(hr, hr).max() == 0


def _data_uris(html: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))))
            for b in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_every_error_map_on_the_page_is_on_the_one_scale(data, store):
    comparison = load_comparison(data)
    html = comparison_body(comparison)
    rows = re.findall(r"<tr data-crop=.*?</tr>", html)
    assert len(rows) == len(store.crops)
    for row in rows:
        hr, *rest = _data_uris(row)
        pairs = list(zip(rest[::2], rest[1::2]))  # (image, its error map): bicubic, then each trial
        assert len(pairs) == 1 + len(comparison.trials)
        for image, levels in pairs:
            assert np.array_equal(levels, error_map(image, hr))  # palette indices are the levels
    assert f"{ERROR_FULL_SCALE} gray levels (of 255) or more (x4)" in html


def test_under_each_crop_its_psnr_rgb_with_the_gain_and_y(store, data):
    html = comparison_body(load_comparison(data))
    row = re.search(r'<tr data-crop="edges">.*?</tr>', html).group(0)
    psnr = store.crop_psnr[("R4", "edges")]
    bicubic = load_comparison(data).crops[0].bicubic_psnr
    assert f"{psnr:.2f} dB ({psnr - bicubic:+.2f})" in row
    assert f"Y {psnr + 1.0:.2f} dB" in row


def test_without_logged_crops_the_section_says_why(data):
    bare = RunData(data.trials, data.history, data.studies, data.tracking_uri)
    with pytest.raises(FigureUnavailable, match="logged predictions of the study's comparison crops"):
        load_comparison(bare)


def test_the_report_embeds_the_section_with_its_images_as_data_uris(two_study_report, store):
    _, html = two_study_report
    section = html[html.index('<section id="section-13">'):]
    section = section[:section.index("</section>")]
    assert "The same crops across trials" in section and 'id="crops-table"' in section
    images = re.findall(r"<img [^>]*>", section)
    assert len(images) == len(store.crops) * (1 + 2 + 2 * 5)  # HR, bicubic and its map, 5 trials and theirs
    assert all('src="data:image/png;base64,' in img for img in images)
