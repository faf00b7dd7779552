"""search: orchestration of sr-search studies (CLI, study specs, Ray Tune + Optuna, MLflow tracking)."""
