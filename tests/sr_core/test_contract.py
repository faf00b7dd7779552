"""The tracking contract's plain-Python rules: the atomic write (whole files, the user's umask), URL
masking and the pruning regret."""
import os
import stat

import pytest

from sr_core.contract import atomic_path, mask, write_text_atomic


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_a_written_file_follows_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == mode


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_password_in_a_url_is_masked_and_other_urls_pass():
    assert mask("postgresql://me:secret@db:5432/optuna") == "postgresql://me:***@db:5432/optuna"
    assert mask("http://127.0.0.1:5000") == "http://127.0.0.1:5000" and mask(None) is None


def test_the_pruning_regret_is_relative_to_the_winner_and_zero_when_the_audited_trial_is_not_better():
    from sr_core.contract import pruning_regret
    assert pruning_regret(0.0100, 0.0098, "min") == pytest.approx(0.02)
    assert pruning_regret(0.0100, 0.0102, "min") == 0.0
    assert pruning_regret(30.0, 30.3, "max") == pytest.approx(0.01) and pruning_regret(30.0, 29.0, "max") == 0.0
    with pytest.raises(ValueError, match="mode"):
        pruning_regret(1.0, 0.5, "lower")
