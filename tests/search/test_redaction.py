"""search.redaction: a password in a URI is never shown, and the real URI is handed over only through
the driver's environment."""
import pytest

from search.redaction import is_masked, mask, publish, redact, resolve

URL = "postgresql://sr:s3cret@db.example:5432/optuna"


def test_mask_hides_only_the_password():
    assert mask(URL) == "postgresql://sr:***@db.example:5432/optuna" and is_masked(mask(URL))
    assert mask("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db" and not is_masked("sqlite:////tmp/x")
    assert mask(None) is None and mask("optuna.journal") == "optuna.journal"


def test_redact_removes_passwords_from_any_text():
    text = f"cannot connect to {URL} (password s3cret rejected); also http://u:pw@host/x"
    out = redact(text, URL)
    assert "s3cret" not in out and "pw@" not in out and "http://u:***@host/x" in out


def test_resolve_takes_the_real_url_from_the_environment_the_driver_set(monkeypatch):
    env = "SR_TEST_STORAGE"
    monkeypatch.delenv(env, raising=False)
    masked = publish(URL, env)
    assert masked == mask(URL) and resolve(masked, env) == URL
    assert resolve("sqlite:////tmp/x.db", env) == "sqlite:////tmp/x.db"  # nothing to resolve
    monkeypatch.setenv(env, "postgresql://sr:other@elsewhere/db")  # not the same URL: refused
    with pytest.raises(RuntimeError, match="needs its password"):
        resolve(masked, env)
