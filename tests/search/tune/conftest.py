import pytest

from search.tune.optuna_store import OptunaTarget


@pytest.fixture
def target(tmp_path):
    """A real Optuna study in a journal file, as a study's driver creates it."""
    target = OptunaTarget("s", str(tmp_path / "optuna.journal"))
    target.create_study()
    return target
