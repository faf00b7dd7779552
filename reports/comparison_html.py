"""The comparison section's markup: one row per crop (most disagreement first), HR and bicubic, then
each shown trial's prediction with its error map and PSNRs under it; click any image to enlarge it
beside its error map and the HR, pixel for pixel. Every image is a data URI: the page asks for nothing.
"""

from __future__ import annotations

import base64
import io
from html import escape

import numpy as np
from plotly.colors import sample_colorscale, unlabel_rgb

from .comparison import ERROR_FULL_SCALE, ORDER_RULE, TRIAL_RULE, Comparison, CropRow, ShownTrial, decode_png, error_map

#: The error maps' colours: plotly's Inferno (perceptually uniform, dark = small error), 256 levels.
ERROR_COLORS = sample_colorscale("Inferno", list(np.linspace(0.0, 1.0, 256)))
_PALETTE = [round(v) for colour in ERROR_COLORS for v in unlabel_rgb(colour)]
_LEGEND = ", ".join(ERROR_COLORS[::32] + ERROR_COLORS[-1:])

CSS = """
.crops-wrap { overflow-x: auto; }
.crops-legend { max-width: 1100px; color: #333; } .crops-legend li { margin: 2px 0; }
table.crops { border-collapse: collapse; }
table.crops th, table.crops td { border: 1px solid #e4e4e4; padding: 4px; text-align: center; vertical-align: top; }
table.crops thead th { font-weight: 600; font-size: 12px; max-width: 136px; }
table.crops thead th small, table.crops tbody th small { display: block; font-weight: normal; color: #666; }
table.crops tbody th { text-align: left; font-size: 12px; font-weight: 600; max-width: 130px; }
img.crop { display: block; width: 128px; height: 128px; image-rendering: pixelated; cursor: zoom-in; }
img.crop.err { margin-top: 2px; }
.psnr { font-size: 12px; white-space: nowrap; } .psnr .y { color: #666; }
.scale-bar { display: inline-block; width: 160px; height: 10px; vertical-align: middle;
             border: 1px solid #999; margin: 0 6px; }
#crop-zoom { position: fixed; inset: 0; background: rgba(0, 0, 0, 0.85); display: flex; gap: 16px;
             align-items: center; justify-content: center; z-index: 10; cursor: zoom-out; }
#crop-zoom figure { margin: 0; color: #eee; font-size: 13px; text-align: center; }
#crop-zoom img { image-rendering: pixelated; display: block; }
"""

# Click a crop: it, its error map (if any) and its row's HR, enlarged by the same whole factor; a click
# or Escape closes. The enlarged images are made on click, so the page loads only the images it shows.
ZOOM = """
(function () {
  function close() { var z = document.getElementById('crop-zoom'); if (z) z.remove(); }
  document.querySelectorAll('img.crop').forEach(function (img) {
    img.addEventListener('click', function () {
      close();
      var cell = img.closest('td'), row = img.closest('tr');
      var shown = [cell.querySelector('img.crop:not(.err)'), cell.querySelector('img.err'), row.querySelector('img.hr')];
      shown = shown.filter(function (x, i) { return x && shown.indexOf(x) === i; });
      var factor = Math.max(2, Math.min(6, Math.floor((window.innerWidth - 80) / (shown.length * 140))));
      var box = document.createElement('div');
      box.id = 'crop-zoom';
      shown.forEach(function (src) {
        var fig = document.createElement('figure'), big = document.createElement('img');
        big.src = src.src; big.width = src.naturalWidth * factor; big.height = src.naturalHeight * factor;
        fig.style.width = big.width + 'px';
        var cap = document.createElement('figcaption');
        cap.textContent = src.getAttribute('data-label') + ' (x' + factor + ')';
        fig.appendChild(big); fig.appendChild(cap); box.appendChild(fig);
      });
      box.addEventListener('click', close);
      document.body.appendChild(box);
    });
  });
  document.addEventListener('keydown', function (e) { if (e.key === 'Escape') close(); });
})();
"""


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _error_png(levels: np.ndarray) -> bytes:
    """An error map (uint8 levels, `error_map`) as a palette PNG in ERROR_COLORS."""
    from PIL import Image

    img = Image.fromarray(levels, mode="L").convert("P")
    img.putpalette(_PALETTE)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _img(png: bytes, label: str, kind: str = "") -> str:
    classes = " ".join(["crop", kind] if kind else ["crop"])
    return (f'<img class="{classes}" src="{_uri(png)}" width="128" height="128" alt="{escape(label)}" '
            f'data-label="{escape(label)}">')


def _psnr_line(psnr: float, psnr_y: float | None, bicubic: float | None = None) -> str:
    gain = f" ({psnr - bicubic:+.2f})" if bicubic is not None else ""
    y = f'<br><span class="y">Y {psnr_y:.2f} dB</span>' if psnr_y is not None and np.isfinite(psnr_y) else ""
    return f'<div class="psnr">{psnr:.2f} dB{gain}{y}</div>'


def _breakable(name: str) -> str:
    """A run or crop name that may wrap after its underscores (they have no spaces)."""
    return escape(name).replace("_", "_<wbr>")


def _header(trial: ShownTrial) -> str:
    return (f"<th>{_breakable(trial.name)}<small>{escape(' · '.join(trial.why))}</small>"
            f"<small>val {trial.val_psnr:.2f} dB</small></th>")


def _row(crop: CropRow, trials: list[ShownTrial]) -> str:
    hr = decode_png(crop.hr_png)
    bicubic_err = _error_png(error_map(decode_png(crop.bicubic_png), hr))
    cells = [f'<th scope="row">{_breakable(crop.name)}<small>{escape(crop.photo)}</small>'
             f"<small>spread {crop.spread:.2f} dB</small></th>",
             f'<td>{_img(crop.hr_png, f"HR of {crop.name}", "hr")}<div class="psnr">target</div></td>',
             f'<td>{_img(crop.bicubic_png, f"bicubic of {crop.name}")}'
             f'{_img(bicubic_err, f"error map of bicubic on {crop.name}", "err")}'
             f"{_psnr_line(crop.bicubic_psnr, crop.bicubic_psnr_y)}</td>"]
    for t in trials:
        png = crop.sr_png.get(t.run_id)
        if png is None:
            cells.append('<td class="missing">not logged</td>')
            continue
        err = _error_png(error_map(decode_png(png), hr))
        cells.append(f'<td>{_img(png, f"{t.name} on {crop.name}")}{_img(err, f"error map of {t.name} on {crop.name}", "err")}'
                     f"{_psnr_line(crop.psnr[t.run_id], crop.psnr_y.get(t.run_id), crop.bicubic_psnr)}</td>")
    return f'<tr data-crop="{escape(crop.name)}">{"".join(cells)}</tr>'


def comparison_body(comparison: Comparison) -> str:
    """The section's HTML: what is shown and why, the scale of the error maps, the table."""
    trials = comparison.trials
    head = "<th>crop</th><th>HR</th><th>bicubic</th>" + "".join(_header(t) for t in trials)
    rows = "".join(_row(crop, trials) for crop in comparison.crops)
    legend = (
        f'<ul class="crops-legend"><li>Trials: {escape(TRIAL_RULE)}</li><li>Crops: {escape(comparison.crop_rule)}.</li>'
        f"<li>Order: {escape(ORDER_RULE)}.</li><li>Under each image: its PSNR on the crop (RGB, with the gain "
        "over bicubic in brackets), and Y (scale cropped from each border, as val/psnr_y). Click an image to "
        "enlarge it beside its error map and the HR.</li>"
        "<li>Error maps: |SR − HR| per pixel, mean over R, G and B, on one scale for every crop and trial: 0"
        f'<span class="scale-bar" style="background: linear-gradient(to right, {_LEGEND})"></span>'
        f"{ERROR_FULL_SCALE} gray levels (of 255) or more (x{255 / ERROR_FULL_SCALE:.0f}).</li></ul>"
    )
    return (f'{legend}<div class="crops-wrap"><table class="crops" id="crops-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div><script>{ZOOM}</script>")
