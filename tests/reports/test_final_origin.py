"""The report's final-model paragraph says which configuration the final step trained (tag final.from)."""
import pandas as pd

from reports.summary import _final_line


def study(**extra) -> pd.Series:
    return pd.Series({"final/name": "residual_b4_c32_lr0.0015_eta1e-06-final", "final/status": "completed",
                      "final/val_psnr": 27.5, "final/val_mse": 0.0021, "final/epochs": 60.0, **extra})


def test_the_search_best_when_the_tag_says_so_or_is_absent():
    for s in (study(**{"final/from": "search"}), study()):
        assert "the search's best configuration trained again" in _final_line(s, 26.0)


def test_an_audited_trial_names_its_audit_run():
    html = _final_line(study(**{"final/from": "audit"}), 26.0)
    assert "the configuration of the audited trial residual_b4_c32_lr0.0015_eta1e-06-audit" in html
    assert "search's best configuration trained" not in html
