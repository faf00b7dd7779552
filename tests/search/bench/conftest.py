import pytest

from _bare import bare_runner


@pytest.fixture
def bare(tmp_path):
    """`bare(*args)` runs `python ARGS` from the repo root where Ray, Optuna and MLflow cannot be imported."""
    return bare_runner(tmp_path)
